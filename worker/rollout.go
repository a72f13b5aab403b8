package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coordhq/coord/semaphore"
	"github.com/robfig/cron/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RolloutPrefix is where rollouts live: RolloutPrefix + group + "/spec" is
// the rollout, "/failed/<id>" the nodes that failed in it, "/last-start"
// when the last upgrade of the group started.
const RolloutPrefix = "coord/rollout/"

// Rollout states.
const (
	RolloutRunning = "running" // nodes upgrade
	RolloutPaused  = "paused"  // an operator paused it: nobody starts, running upgrades finish
	RolloutHalted  = "halted"  // failures reached the budget: nobody starts until resumed
	RolloutAborted = "aborted" // over: nodes stay on whatever version they have
)

var (
	// ErrNoRollout is returned when a group has no rollout.
	ErrNoRollout = errors.New("worker: no rollout for this group")
	// ErrBadRollout is returned for a rollout spec that cannot run.
	ErrBadRollout = errors.New("worker: bad rollout")
)

// Rollout is what an operator starts: move every node of Group to Version,
// at most MaxParallel at once.
type Rollout struct {
	Group       string `json:"group"`
	Version     string `json:"version"`
	MaxParallel int    `json:"max_parallel"`
	// FailureBudget is how many failed nodes halt the rollout (0: the
	// first failure halts it).
	FailureBudget int `json:"failure_budget"`
	// MinInterval spaces the starts of upgrades in the group.
	MinInterval Duration `json:"min_interval,omitempty"`
	// Window, if set, is a cron spec (robfig/cron, 5 fields or a
	// descriptor such as @daily) of when windows open; each lasts
	// WindowDuration. Upgrades start only inside a window.
	Window         string   `json:"window,omitempty"`
	WindowDuration Duration `json:"window_duration,omitempty"`
	// HealthTimeout bounds how long the health check may take to pass
	// after an upgrade (default 5 minutes).
	HealthTimeout Duration `json:"health_timeout,omitempty"`

	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"` // why halted or aborted
	Started time.Time `json:"started"`
	// Revision is the store revision of the spec's last change.
	Revision int64 `json:"-"`
}

// Duration is a time.Duration that reads and writes as "1m30s" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultHealthTimeout is the health timeout of a rollout that sets none.
const DefaultHealthTimeout = 5 * time.Minute

func rolloutKey(group string) string       { return RolloutPrefix + group + "/spec" }
func failedPrefix(group string) string     { return RolloutPrefix + group + "/failed/" }
func lastStartKey(group string) string     { return RolloutPrefix + group + "/last-start" }
func rolloutSemaphore(group string) string { return "rollout-" + group }

// validate checks a spec an operator gives and fills defaults.
func (r *Rollout) validate() error {
	if err := validSegment("group", r.Group); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRollout, err)
	}
	switch {
	case r.Version == "":
		return fmt.Errorf("%w: no version", ErrBadRollout)
	case r.MaxParallel < 1:
		return fmt.Errorf("%w: max parallel %d, want at least 1", ErrBadRollout, r.MaxParallel)
	case r.FailureBudget < 0:
		return fmt.Errorf("%w: failure budget %d, want at least 0", ErrBadRollout, r.FailureBudget)
	case r.MinInterval < 0 || r.WindowDuration < 0 || r.HealthTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrBadRollout)
	case (r.Window == "") != (r.WindowDuration == 0):
		return fmt.Errorf("%w: a window needs both a cron spec and a duration", ErrBadRollout)
	}
	if r.Window != "" {
		if _, err := cron.ParseStandard(r.Window); err != nil {
			return fmt.Errorf("%w: window %q: %v", ErrBadRollout, r.Window, err)
		}
	}
	if r.HealthTimeout == 0 {
		r.HealthTimeout = Duration(DefaultHealthTimeout)
	}
	return nil
}

// InWindow reports whether t is inside one of the rollout's windows: a
// window opened at the last activation of Window at or before t and has
// not lasted WindowDuration yet. A rollout without a window is always in.
func (r *Rollout) InWindow(t time.Time) bool {
	if r.Window == "" {
		return true
	}
	sched, err := cron.ParseStandard(r.Window)
	if err != nil {
		return false // validated when started; a spec edited by hand fails closed
	}
	// The first activation after t-duration: if it is at or before t, the
	// window it opened, [open, open+duration), contains t.
	open := sched.Next(t.Add(-time.Duration(r.WindowDuration)))
	return !open.After(t)
}

// StartRollout starts (or replaces) the rollout of r.Group: it stores the
// spec as running, clears the failures of the previous rollout, and sets
// the group's semaphore to MaxParallel slots.
func StartRollout(ctx context.Context, cli *clientv3.Client, r Rollout) (*Rollout, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.State, r.Reason, r.Started = RolloutRunning, "", time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := semaphore.SetLimit(ctx, cli, rolloutSemaphore(r.Group), r.MaxParallel); err != nil {
		return nil, err
	}
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpPut(rolloutKey(r.Group), string(b)),
		clientv3.OpDelete(failedPrefix(r.Group), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	r.Revision = resp.Header.Revision
	return &r, nil
}

// GetRollout reads the rollout of group.
func GetRollout(ctx context.Context, cli *clientv3.Client, group string) (*Rollout, error) {
	if err := validSegment("group", group); err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, rolloutKey(group))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNoRollout
	}
	return decodeRollout(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

func decodeRollout(b []byte, rev int64) (*Rollout, error) {
	var r Rollout
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("worker: unreadable rollout: %w", err)
	}
	r.Revision = rev
	return &r, nil
}

// setState moves the rollout from one of the states in from to state, with
// a compare on the spec's revision so two operators cannot cross.
func setState(ctx context.Context, cli *clientv3.Client, group, state, reason string, from ...string) (*Rollout, error) {
	for {
		r, err := GetRollout(ctx, cli, group)
		if err != nil {
			return nil, err
		}
		ok := false
		for _, f := range from {
			ok = ok || r.State == f
		}
		if !ok {
			return r, fmt.Errorf("worker: rollout of %s is %s; cannot make it %s", group, r.State, state)
		}
		r.State, r.Reason = state, reason
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		ops := []clientv3.Op{clientv3.OpPut(rolloutKey(group), string(b))}
		if state == RolloutRunning {
			// Resuming acknowledges the failures so far: the budget counts
			// from here. Failed nodes keep their slots until released.
			ops = append(ops, clientv3.OpDelete(failedPrefix(group), clientv3.WithPrefix()))
		}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(rolloutKey(group)), "=", r.Revision)).
			Then(ops...).
			Commit()
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			r.Revision = resp.Header.Revision
			return r, nil
		}
	}
}

// PauseRollout stops new upgrades in group; upgrades under way finish.
func PauseRollout(ctx context.Context, cli *clientv3.Client, group string) (*Rollout, error) {
	return setState(ctx, cli, group, RolloutPaused, "paused by an operator", RolloutRunning, RolloutHalted)
}

// ResumeRollout lets a paused or halted rollout go on, and resets its
// failure count.
func ResumeRollout(ctx context.Context, cli *clientv3.Client, group string) (*Rollout, error) {
	return setState(ctx, cli, group, RolloutRunning, "", RolloutPaused, RolloutHalted)
}

// AbortRollout ends the rollout of group: nobody starts an upgrade.
func AbortRollout(ctx context.Context, cli *clientv3.Client, group string) (*Rollout, error) {
	return setState(ctx, cli, group, RolloutAborted, "aborted by an operator", RolloutRunning, RolloutPaused, RolloutHalted)
}

// Failure is a node that failed in a rollout.
type Failure struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// ReportFailure records that node id failed to reach r's version and halts
// the rollout once failures exceed its budget. It returns whether the
// rollout is halted now.
func ReportFailure(ctx context.Context, cli *clientv3.Client, r *Rollout, f Failure) (halted bool, err error) {
	b, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	if _, err := cli.Put(ctx, failedPrefix(r.Group)+f.ID, string(b)); err != nil {
		return false, err
	}
	failures, err := Failures(ctx, cli, r.Group)
	if err != nil {
		return false, err
	}
	if len(failures) <= r.FailureBudget {
		return false, nil
	}
	reason := fmt.Sprintf("%d failed nodes, budget %d", len(failures), r.FailureBudget)
	cur, err := setState(ctx, cli, r.Group, RolloutHalted, reason, RolloutRunning, RolloutPaused)
	if cur != nil && cur.State == RolloutHalted {
		return true, nil // halted by this call or by another node's
	}
	return false, err
}

// Failures lists the failed nodes of group's rollout.
func Failures(ctx context.Context, cli *clientv3.Client, group string) ([]Failure, error) {
	resp, err := cli.Get(ctx, failedPrefix(group), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Failure, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var f Failure
		if err := json.Unmarshal(kv.Value, &f); err != nil {
			f = Failure{ID: strings.TrimPrefix(string(kv.Key), failedPrefix(group)), Reason: "unreadable record"}
		}
		out = append(out, f)
	}
	return out, nil
}

// claimStart spaces the starts of upgrades in the group by MinInterval: it
// records now as the last start if the last one is at least MinInterval
// ago, and otherwise returns how long to wait. Clocks of different agents
// are compared here, so MinInterval should be well above their skew.
func claimStart(ctx context.Context, cli *clientv3.Client, r *Rollout, now time.Time) (wait time.Duration, err error) {
	key := lastStartKey(r.Group)
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if len(resp.Kvs) == 1 {
		ns, _ := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		if d := time.Unix(0, ns).Add(time.Duration(r.MinInterval)).Sub(now); d > 0 {
			return d, nil
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
	}
	put, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, strconv.FormatInt(now.UnixNano(), 10))).Commit()
	if err != nil {
		return 0, err
	}
	if !put.Succeeded {
		return time.Duration(r.MinInterval), nil // another node started just now
	}
	return 0, nil
}
