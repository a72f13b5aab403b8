package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// FleetLockPrefix names the semaphore of FleetLock group G:
// FleetLockPrefix + G, under semaphore.DefaultPrefix, so that
// `coordctl sem status fleetlock-G` shows its holders.
const FleetLockPrefix = "fleetlock-"

// FleetLock error kinds: the fixed set a client sees in {"kind", "value"}.
const (
	KindMethodNotAllowed = "method_not_allowed"      // 405: not a POST (GET for status)
	KindMissingHeader    = "missing_protocol_header" // 400: no "fleet-lock-protocol: true"
	KindDecodeError      = "decode_error"            // 400: the body is not the protocol's JSON
	KindInvalidParams    = "invalid_client_params"   // 400: empty id, or a group outside ^[a-zA-Z0-9.-]+$
	KindUnknownGroup     = "unknown_group"           // 400: a group the server is not configured for
	KindSemaphoreFull    = "semaphore_full"          // 423: every slot of the group is held
	KindPaused           = "paused"                  // 423: an operator paused the group
	KindOutsideWindow    = "outside_window"          // 423: not inside the group's maintenance window
	KindFailureBudget    = "failure_budget_exceeded" // 423: too many holders never came back; release them to go on
	KindStoreUnavailable = "store_unavailable"       // 503: the store did not answer; try again
)

var groupRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// maxBody bounds a request body; the protocol's is under 200 bytes.
const maxBody = 64 << 10

// FleetLockConfig configures a FleetLock server.
type FleetLockConfig struct {
	// Client talks to the store (coordd or etcd).
	Client *clientv3.Client
	// Groups maps each group to its number of slots. When it is empty,
	// every well-formed group is served, with DefaultSlots slots when it is
	// first used. A configured count is written to the live semaphore when
	// the server starts, so a change takes effect.
	Groups map[string]int
	// DefaultSlots is the slot count of an unconfigured group's new
	// semaphore (default 1).
	DefaultSlots int
	// RequestTimeout bounds the store calls of one request (default 10 s).
	RequestTimeout time.Duration
	// Policy applies to every group: windows, a deadline and a failure
	// budget. The zero Policy grants slots whenever one is free.
	Policy FleetLockPolicy
	// Now is the clock of windows and deadlines (default time.Now).
	Now func() time.Time
}

// FleetLockPolicy is the server-side policy of pre-reboot. Steady-state is
// never refused.
type FleetLockPolicy struct {
	// Window (a cron spec) and WindowDuration: slots are granted only
	// inside a window.
	Window         string
	WindowDuration time.Duration
	// Deadline: a holder that has not reported steady-state this long after
	// taking its slot counts as failed. When more than FailureBudget holders
	// of a group have failed, no new slot of the group is granted until an
	// operator releases them (`coordctl sem release fleetlock-G ID`).
	Deadline      time.Duration
	FailureBudget int
}

// FleetLockPausePrefix + group is the key whose presence pauses a group:
// pre-reboot is refused while it exists (`coordctl fleetlock pause G`).
const FleetLockPausePrefix = "coord/fleetlock/paused/"

// FleetLock serves the FleetLock protocol (POST /v1/pre-reboot, POST
// /v1/steady-state) and GET /v1/status, relative to where it is mounted.
// Slots are persistent semaphore grants owned by the client's id: a node
// that reboots keeps its slot until it reports steady-state or an operator
// releases it (`coordctl sem release fleetlock-GROUP ID`).
type FleetLock struct {
	cfg     FleetLockConfig
	session *concurrency.Session
}

// NewFleetLock checks the configuration, writes the configured slot counts
// to the groups' semaphores, and opens the session its requests queue
// under. Close it when done.
func NewFleetLock(ctx context.Context, cfg FleetLockConfig) (*FleetLock, error) {
	if cfg.Client == nil {
		return nil, errors.New("worker: FleetLock needs a client")
	}
	if cfg.DefaultSlots == 0 {
		cfg.DefaultSlots = 1
	}
	if cfg.DefaultSlots < 0 {
		return nil, fmt.Errorf("worker: FleetLock default slots %d: want at least 0", cfg.DefaultSlots)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pol := Rollout{Group: "policy", Version: "-", MaxParallel: 1, Window: cfg.Policy.Window, WindowDuration: Duration(cfg.Policy.WindowDuration)}
	if err := pol.validate(); err != nil {
		return nil, fmt.Errorf("worker: FleetLock window: %w", err)
	}
	if cfg.Policy.Deadline < 0 || cfg.Policy.FailureBudget < 0 {
		return nil, errors.New("worker: FleetLock deadline and failure budget must not be negative")
	}
	for g, n := range cfg.Groups {
		if !groupRE.MatchString(g) {
			return nil, fmt.Errorf("worker: FleetLock group %q: want ^[a-zA-Z0-9.-]+$", g)
		}
		if n < 0 {
			return nil, fmt.Errorf("worker: FleetLock group %s: %d slots, want at least 0", g, n)
		}
		if err := semaphore.SetLimit(ctx, cfg.Client, FleetLockPrefix+g, n); err != nil {
			return nil, fmt.Errorf("worker: FleetLock group %s: set slots: %w", g, err)
		}
	}
	sess, err := concurrency.NewSession(cfg.Client, concurrency.WithTTL(30))
	if err != nil {
		return nil, fmt.Errorf("worker: FleetLock session: %w", err)
	}
	return &FleetLock{cfg: cfg, session: sess}, nil
}

// Close ends the session; slots taken through the server stay held.
func (f *FleetLock) Close() error { return f.session.Close() }

type fleetLockRequest struct {
	ClientParams *struct {
		ID    string `json:"id"`
		Group string `json:"group"`
	} `json:"client_params"`
}

type fleetLockError struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, kind, format string, args ...any) {
	writeJSON(w, status, fleetLockError{Kind: kind, Value: fmt.Sprintf(format, args...)})
}

// ServeHTTP implements http.Handler.
func (f *FleetLock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/pre-reboot":
		f.protocol(w, r, f.lock)
	case "/v1/steady-state":
		f.protocol(w, r, f.unlock)
	case "/v1/status":
		if r.Method != http.MethodGet {
			fail(w, http.StatusMethodNotAllowed, KindMethodNotAllowed, "status takes GET, not %s", r.Method)
			return
		}
		f.status(w, r)
	default:
		http.NotFound(w, r)
	}
}

// protocol checks what both protocol endpoints share, then calls op.
func (f *FleetLock) protocol(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, group, id string) (int, *fleetLockError)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed, KindMethodNotAllowed, "%s takes POST, not %s", r.URL.Path, r.Method)
		return
	}
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("fleet-lock-protocol")), "true") {
		fail(w, http.StatusBadRequest, KindMissingHeader, `the request lacks the header "fleet-lock-protocol: true"`)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		fail(w, http.StatusBadRequest, KindDecodeError, "reading the body: %v", err)
		return
	}
	if len(body) > maxBody {
		fail(w, http.StatusBadRequest, KindDecodeError, "the body is over %d bytes", maxBody)
		return
	}
	var req fleetLockRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(w, http.StatusBadRequest, KindDecodeError, "the body is not FleetLock JSON: %v", err)
		return
	}
	if req.ClientParams == nil {
		fail(w, http.StatusBadRequest, KindDecodeError, `the body has no "client_params"`)
		return
	}
	id, group := req.ClientParams.ID, req.ClientParams.Group
	switch {
	case id == "":
		fail(w, http.StatusBadRequest, KindInvalidParams, "client_params.id is empty")
		return
	case !groupRE.MatchString(group):
		fail(w, http.StatusBadRequest, KindInvalidParams, "client_params.group %q does not match ^[a-zA-Z0-9.-]+$", group)
		return
	}
	if len(f.cfg.Groups) > 0 {
		if _, ok := f.cfg.Groups[group]; !ok {
			fail(w, http.StatusBadRequest, KindUnknownGroup, "group %q is not configured on this server", group)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.RequestTimeout)
	defer cancel()
	status, ferr := op(ctx, group, id)
	if ferr != nil {
		writeJSON(w, status, ferr)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// lock is RecursiveLock: take a slot of group for id, or confirm it holds one.
func (f *FleetLock) lock(ctx context.Context, group, id string) (int, *fleetLockError) {
	sem, err := semaphore.New(f.session, FleetLockPrefix+group,
		semaphore.WithHolderID(id), semaphore.WithValue(id), semaphore.WithPersistent(),
		semaphore.WithLimit(f.slots(group)))
	if errors.Is(err, semaphore.ErrBadName) {
		return http.StatusBadRequest, &fleetLockError{KindInvalidParams, err.Error()}
	}
	if err != nil {
		return http.StatusInternalServerError, &fleetLockError{KindStoreUnavailable, err.Error()}
	}
	st, err := semaphore.GetStatus(ctx, f.cfg.Client, FleetLockPrefix+group)
	if err != nil {
		return http.StatusServiceUnavailable, &fleetLockError{KindStoreUnavailable, err.Error()}
	}
	holds := false
	for _, h := range st.Holders {
		holds = holds || h.ID == id
	}
	if !holds { // a holder asking again is answered 200 whatever the policy
		if status, ferr := f.policy(ctx, group, st); ferr != nil {
			return status, ferr
		}
	}
	g, err := sem.TryAcquire(ctx)
	switch {
	case errors.Is(err, semaphore.ErrNoSlot):
		return http.StatusLocked, &fleetLockError{KindSemaphoreFull, fmt.Sprintf("every slot of group %s is held; try again later", group)}
	case err != nil:
		return http.StatusServiceUnavailable, &fleetLockError{KindStoreUnavailable, err.Error()}
	}
	g.Forget() // the slot is the id's now; no watch per slot here
	return http.StatusOK, nil
}

// unlock is UnlockIfHeld: release id's slot of group if it holds one.
func (f *FleetLock) unlock(ctx context.Context, group, id string) (int, *fleetLockError) {
	err := semaphore.ForceRelease(ctx, f.cfg.Client, FleetLockPrefix+group, id)
	switch {
	case err == nil, errors.Is(err, semaphore.ErrNotHeld):
		return http.StatusOK, nil
	case errors.Is(err, semaphore.ErrBadName):
		return http.StatusBadRequest, &fleetLockError{KindInvalidParams, err.Error()}
	default:
		return http.StatusServiceUnavailable, &fleetLockError{KindStoreUnavailable, err.Error()}
	}
}

// policy refuses a new slot of group when the group is paused, outside its
// window, or has more overdue holders than the failure budget.
func (f *FleetLock) policy(ctx context.Context, group string, st *semaphore.Status) (int, *fleetLockError) {
	resp, err := f.cfg.Client.Get(ctx, FleetLockPausePrefix+group, clientv3.WithCountOnly())
	if err != nil {
		return http.StatusServiceUnavailable, &fleetLockError{KindStoreUnavailable, err.Error()}
	}
	if resp.Count > 0 {
		return http.StatusLocked, &fleetLockError{KindPaused, fmt.Sprintf("group %s is paused by an operator", group)}
	}
	now := f.cfg.Now()
	win := Rollout{Window: f.cfg.Policy.Window, WindowDuration: Duration(f.cfg.Policy.WindowDuration)}
	if !win.InWindow(now) {
		return http.StatusLocked, &fleetLockError{KindOutsideWindow, fmt.Sprintf("outside the maintenance window %q", f.cfg.Policy.Window)}
	}
	if over := f.overdue(st, now); f.cfg.Policy.Deadline > 0 && len(over) > f.cfg.Policy.FailureBudget {
		return http.StatusLocked, &fleetLockError{KindFailureBudget, fmt.Sprintf("%d holders of group %s never came back within %v (%s), budget %d; release them to go on",
			len(over), group, f.cfg.Policy.Deadline, strings.Join(over, ", "), f.cfg.Policy.FailureBudget)}
	}
	return http.StatusOK, nil
}

// overdue lists the holders past the deadline.
func (f *FleetLock) overdue(st *semaphore.Status, now time.Time) []string {
	var ids []string
	if f.cfg.Policy.Deadline <= 0 {
		return nil
	}
	for _, h := range st.Holders {
		if now.Sub(h.Since) > f.cfg.Policy.Deadline {
			ids = append(ids, h.ID)
		}
	}
	return ids
}

func (f *FleetLock) slots(group string) int {
	if n, ok := f.cfg.Groups[group]; ok {
		return n
	}
	return f.cfg.DefaultSlots
}

// FleetLockStatus is the answer of GET /v1/status.
type FleetLockStatus struct {
	Groups []FleetLockGroup `json:"groups"`
}

// FleetLockGroup is one group's slots and holders.
type FleetLockGroup struct {
	Group   string            `json:"group"`
	Slots   int               `json:"slots"`
	Paused  bool              `json:"paused"`
	Holders []FleetLockHolder `json:"holders"`
}

// FleetLockHolder is a node holding a slot, since when (server clock).
type FleetLockHolder struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
	// Overdue: held past the policy's deadline; counts as failed.
	Overdue bool `json:"overdue,omitempty"`
}

func (f *FleetLock) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.RequestTimeout)
	defer cancel()
	groups, err := f.groups(ctx)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, KindStoreUnavailable, "%v", err)
		return
	}
	out := FleetLockStatus{Groups: []FleetLockGroup{}}
	for _, g := range groups {
		st, err := semaphore.GetStatus(ctx, f.cfg.Client, FleetLockPrefix+g)
		if err != nil {
			fail(w, http.StatusServiceUnavailable, KindStoreUnavailable, "%v", err)
			return
		}
		fg := FleetLockGroup{Group: g, Slots: st.Limit, Holders: []FleetLockHolder{}}
		if !st.Exists {
			fg.Slots = f.slots(g)
		}
		now := f.cfg.Now()
		for _, h := range st.Holders {
			over := f.cfg.Policy.Deadline > 0 && now.Sub(h.Since) > f.cfg.Policy.Deadline
			fg.Holders = append(fg.Holders, FleetLockHolder{ID: h.ID, Since: h.Since, Overdue: over})
		}
		paused, err := f.cfg.Client.Get(ctx, FleetLockPausePrefix+g, clientv3.WithCountOnly())
		if err != nil {
			fail(w, http.StatusServiceUnavailable, KindStoreUnavailable, "%v", err)
			return
		}
		fg.Paused = paused.Count > 0
		out.Groups = append(out.Groups, fg)
	}
	writeJSON(w, http.StatusOK, out)
}

// groups lists the configured groups, or, with none configured, the
// groups that have a semaphore in the store.
func (f *FleetLock) groups(ctx context.Context) ([]string, error) {
	var gs []string
	if len(f.cfg.Groups) > 0 {
		for g := range f.cfg.Groups {
			gs = append(gs, g)
		}
	} else {
		pfx := semaphore.DefaultPrefix + FleetLockPrefix
		resp, err := f.cfg.Client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, kv := range resp.Kvs {
			g, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), pfx), "/")
			if !seen[g] {
				seen[g] = true
				gs = append(gs, g)
			}
		}
	}
	sort.Strings(gs)
	return gs, nil
}

// PauseFleetLock pauses FleetLock group: pre-reboot is refused until
// ResumeFleetLock; slots held stay held and steady-state still works.
func PauseFleetLock(ctx context.Context, cli *clientv3.Client, group string) error {
	if !groupRE.MatchString(group) {
		return fmt.Errorf("worker: FleetLock group %q: want ^[a-zA-Z0-9.-]+$", group)
	}
	_, err := cli.Put(ctx, FleetLockPausePrefix+group, time.Now().UTC().Format(time.RFC3339))
	return err
}

// ResumeFleetLock lifts a pause of FleetLock group.
func ResumeFleetLock(ctx context.Context, cli *clientv3.Client, group string) error {
	if !groupRE.MatchString(group) {
		return fmt.Errorf("worker: FleetLock group %q: want ^[a-zA-Z0-9.-]+$", group)
	}
	_, err := cli.Delete(ctx, FleetLockPausePrefix+group)
	return err
}
