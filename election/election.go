package election

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultPrefix is the root under which elections live unless WithPrefix
// says otherwise. The election "sched" keeps its candidates under
// "coord/election/sched/", as etcd's concurrency.NewElection(s,
// "coord/election/sched") and `etcdctl elect coord/election/sched` do.
const DefaultPrefix = "coord/election/"

// DefaultTTL is the TTL in seconds of the sessions Run creates, unless
// WithTTL says otherwise: how long the cluster waits after a leader stops
// answering before someone else may lead.
const DefaultTTL = 10

var (
	// ErrNoLeader is returned by CurrentLeader and Election.Leader when the
	// election has no candidate, hence no leader.
	ErrNoLeader = errors.New("election: no leader")
	// ErrSessionLost is returned by Campaign when the candidate's key is
	// gone before it was elected: the session's lease expired or was
	// revoked, or the key was deleted. The candidate is not the leader.
	ErrSessionLost = errors.New("election: session lost")
	// ErrNotLeader is returned by Proclaim when the leadership is lost
	// (resigned, or its key is gone). Nothing was written.
	ErrNotLeader = errors.New("election: not leader")
	// ErrBadName is returned for an election name that cannot be one key
	// segment.
	ErrBadName = errors.New("election: bad name")
)

// Election is one candidate of a named election: the session's candidacy.
// A session has at most one candidate key per election, so calls of one
// Election (or of two Elections of one session and name) share it: a
// second Campaign while the first waits or leads takes over the same key.
// The methods are safe for concurrent use.
type Election struct {
	cli     *clientv3.Client
	session *concurrency.Session
	pfx     string // root + name + "/": the candidates' keys are pfx + lease in hex
}

// Option configures an Election, Run, Observe or CurrentLeader.
type Option func(*options)

type options struct {
	root string
	ttl  int
}

// WithPrefix sets the root prepended, verbatim, to election names
// (default DefaultPrefix). Use the same root everywhere an election is
// named.
func WithPrefix(root string) Option { return func(o *options) { o.root = root } }

// WithTTL sets the TTL in seconds of the sessions Run creates (default
// DefaultTTL). It is the time a leader that stopped answering keeps the
// leadership; the server may enforce a minimum (etcd's is derived from its
// election timeout). Only Run uses it: an Election uses its session's.
func WithTTL(seconds int) Option { return func(o *options) { o.ttl = seconds } }

func buildOptions(opts []Option) options {
	o := options{root: DefaultPrefix, ttl: DefaultTTL}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// prefix returns the key prefix of the candidates of election name.
func (o options) prefix(name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	return o.root + name + "/", nil
}

// New returns the candidate of election name that campaigns with session
// s. It does no I/O. Only WithPrefix applies.
func New(s *concurrency.Session, name string, opts ...Option) (*Election, error) {
	pfx, err := buildOptions(opts).prefix(name)
	if err != nil {
		return nil, err
	}
	return &Election{cli: s.Client(), session: s, pfx: pfx}, nil
}

// Key returns the key this candidate campaigns under: the election's
// prefix, "/", and the session's lease ID in hex, as etcd names it.
func (e *Election) Key() string { return fmt.Sprintf("%s%x", e.pfx, int64(e.session.Lease())) }

// validName accepts a name that is one key segment, so that no election's
// candidates fall inside another's prefix ("a" and "a/b" would).
func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadName)
	case strings.Contains(name, "/"):
		return fmt.Errorf("%w: %q contains '/' (put hierarchy in WithPrefix)", ErrBadName, name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %q contains a control character", ErrBadName, name)
	}
	return nil
}
