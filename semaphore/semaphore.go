package semaphore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultPrefix is the key prefix under which semaphores live unless
// WithPrefix says otherwise.
const DefaultPrefix = "coord/semaphore/"

var (
	// ErrNoSlot is returned by TryAcquire when no slot is free, or when
	// waiters that asked earlier are still queued.
	ErrNoSlot = errors.New("semaphore: no free slot")
	// ErrSessionLost is returned when the session's lease expired or was
	// revoked while acquiring, or the queue entry was deleted.
	ErrSessionLost = errors.New("semaphore: session lost")
	// ErrNotHeld is returned by Release when the grant is no longer held
	// (released already, force-released, or expired). Nothing was changed.
	ErrNotHeld = errors.New("semaphore: grant not held")
	// ErrBadName is returned for a semaphore name or holder ID that cannot
	// be a key segment.
	ErrBadName = errors.New("semaphore: bad name")
	// ErrBadLimit is returned for a negative limit, or when the stored limit
	// is not a number.
	ErrBadLimit = errors.New("semaphore: bad limit")
)

// Semaphore is one participant of a named counting semaphore: it acquires
// at most one slot at a time, under its holder ID, bound to its session.
// Its methods are safe for concurrent use.
type Semaphore struct {
	cli     *clientv3.Client
	session *concurrency.Session
	keys    keys
	id      string
	value   string
	limit   int
	// quarantine is how long a slot stays taken after this holder's lease
	// expires; it travels with the grant, so whoever ends it uses it. If
	// not set, it is the session's TTL, read once at the first grant.
	quarantine    time.Duration
	quarantineSet bool
	persistent    bool // grants without a lease: see WithPersistent
	now           func() time.Time

	mu             sync.Mutex // guards quarantineSecs, limitSeen and queueUsers
	quarantineSecs int64      // resolved quarantine, -1 until known
	limitSeen      int        // the limit last read from the store
	queueUsers     int        // calls using this participant's queue entry
}

func (s *Semaphore) knownLimit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limitSeen
}

func (s *Semaphore) setKnownLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limitSeen = n
}

// Option configures a Semaphore (or the package-level admin calls, where
// only WithPrefix matters).
type Option func(*options)

type options struct {
	prefix        string
	limit         int
	id            string
	value         string
	quarantine    time.Duration
	quarantineSet bool
	persistent    bool
}

// WithLimit sets the number of slots used when the semaphore does not
// exist yet in the store (default 1, a mutex). An existing semaphore keeps
// its stored limit; change it with SetLimit.
func WithLimit(n int) Option { return func(o *options) { o.limit = n } }

// WithHolderID sets the holder identity. Acquiring with the ID of a current
// holder returns that holder's grant (re-entrancy), and a holder whose
// lease expired gets its own quarantined slot back at once. IDs must be
// unique per real holder (a node name, a job run). The default is unique
// per session: hostname-pid-lease.
func WithHolderID(id string) Option { return func(o *options) { o.id = id } }

// WithValue sets a free-form value shown to operators (a hostname, an
// address). The default is the hostname.
func WithValue(v string) Option { return func(o *options) { o.value = v } }

// WithQuarantine sets how long a slot stays taken after its holder's lease
// expired without a release (lock-delay), because the holder may still be
// working. The default is the session's TTL; 0 frees such a slot at once.
// The cluster measures the delay with a lease, so it is never shorter than
// the server's minimum lease TTL unless it is 0.
func WithQuarantine(d time.Duration) Option {
	return func(o *options) { o.quarantine, o.quarantineSet = d, true }
}

// WithPersistent makes grants that are not bound to the session's lease:
// the slot stays held, by holder ID, until it is released (by Release of
// any participant with that ID, or ForceRelease). This is for holders that
// cannot keep a session, such as a FleetLock client that reboots while
// holding its slot; only the queue entry of a waiting Acquire uses the
// session. A persistent grant's Done closes only on release.
func WithPersistent() Option { return func(o *options) { o.persistent = true } }

// WithPrefix sets the key prefix of semaphores (default DefaultPrefix).
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

func buildOptions(opts []Option) options {
	o := options{prefix: DefaultPrefix, limit: 1}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// New returns the participant of semaphore name that acquires under the
// session s. It does no I/O: the semaphore is created in the store, with
// the limit of WithLimit, by the first Acquire.
func New(s *concurrency.Session, name string, opts ...Option) (*Semaphore, error) {
	o := buildOptions(opts)
	k, err := newKeys(o.prefix, name)
	if err != nil {
		return nil, err
	}
	if o.limit < 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadLimit, o.limit)
	}
	if o.id == "" {
		o.id = fmt.Sprintf("%s-%d-%x", hostname(), os.Getpid(), int64(s.Lease()))
	}
	if err := validName("holder ID", o.id); err != nil {
		return nil, err
	}
	if o.value == "" {
		o.value = hostname()
	}
	if o.quarantine < 0 {
		return nil, fmt.Errorf("semaphore: negative quarantine %v", o.quarantine)
	}
	return &Semaphore{
		cli: s.Client(), session: s, keys: k, id: o.id, value: o.value,
		limit: o.limit, quarantine: o.quarantine, quarantineSet: o.quarantineSet, persistent: o.persistent, now: time.Now,
		quarantineSecs: -1, limitSeen: o.limit,
	}, nil
}

// HolderID returns the identity this participant acquires under.
func (s *Semaphore) HolderID() string { return s.id }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

// keys is the layout of one semaphore under its prefix P:
//
//	P/g/<id>   grant: lease-bound; its create revision is the fencing token
//	P/limit    the number of slots
//	P/o/<id>   occupancy: no lease; one per taken slot, live or quarantined
//	P/p/<id>   quarantine: bound to a lease whose TTL is the quarantine
//	P/q/<id>   queue entry: lease-bound; create revision orders the waiters
//
// A slot is taken while its o key exists. A release deletes g and o; an
// expired lease deletes only g, so o stays: the slot is quarantined until
// the head waiter has seen a p key for it come and go. [P/g/, P/q/) is the
// one range the head of the queue watches.
type keys struct {
	pfx string
}

func newKeys(prefix, name string) (keys, error) {
	if err := validName("semaphore name", name); err != nil {
		return keys{}, err
	}
	return keys{pfx: prefix + name + "/"}, nil
}

func (k keys) grant(id string) string { return k.pfx + "g/" + id }
func (k keys) limit() string          { return k.pfx + "limit" }
func (k keys) occ(id string) string   { return k.pfx + "o/" + id }
func (k keys) quar(id string) string  { return k.pfx + "p/" + id }
func (k keys) queue(id string) string { return k.pfx + "q/" + id }
func (k keys) queuePrefix() string    { return k.pfx + "q/" }
func (k keys) occPrefix() string      { return k.pfx + "o/" }

// stateRange is [P/g/, P/q/): grants, limit, occupancy and quarantine.
func (k keys) stateRange() (string, string) { return k.pfx + "g/", k.pfx + "q/" }

// validName accepts what can be one key segment and read back unambiguously.
func validName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadName, what)
	case len(s) > 256:
		return fmt.Errorf("%w: %s longer than 256 bytes", ErrBadName, what)
	case strings.Contains(s, "/"):
		return fmt.Errorf("%w: %s %q contains '/'", ErrBadName, what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s %q contains a control character", ErrBadName, what, s)
	}
	return nil
}
