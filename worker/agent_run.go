package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrSlotLost is returned when the agent's slot was released under it (an
// operator's force-release) while it worked: it stops writing progress.
var ErrSlotLost = errors.New("worker: upgrade slot lost")

// Run registers the node and follows its group's rollouts until ctx ends
// (then it returns nil) or its session is lost.
func (a *Agent) Run(ctx context.Context) error {
	sess, err := concurrency.NewSession(a.cfg.Client, concurrency.WithTTL(a.cfg.TTL), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("worker: session: %w", err)
	}
	defer sess.Close()
	a.sess = sess
	v, err := a.version(ctx)
	if err != nil {
		return err
	}
	if a.reg, err = Register(ctx, a.cfg.Client, sess.Lease(), Node{ID: a.cfg.ID, Group: a.cfg.Group, Version: v,
		State: StateIdle, Address: a.cfg.Address, Labels: a.cfg.Labels}); err != nil {
		return err
	}
	value := a.cfg.Address
	if value == "" {
		value = a.cfg.ID
	}
	// Slots are persistent, owned by the node id: a node that reboots or
	// crashes mid-upgrade keeps its slot and takes it back when it returns.
	if a.sem, err = semaphore.New(sess, rolloutSemaphore(a.cfg.Group), semaphore.WithHolderID(a.cfg.ID),
		semaphore.WithPersistent(), semaphore.WithValue(value)); err != nil {
		return err
	}
	for {
		wait, rev, err := a.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-sess.Done():
			return semaphore.ErrSessionLost
		default:
		}
		if err != nil {
			a.log.Warn("rollout step failed; will retry", "err", err)
			wait = min(wait, 2*time.Second)
		}
		a.waitChange(ctx, rev, wait)
	}
}

// pass looks at the rollout and moves the node one stretch; it returns how
// long to wait before the next look, unless the rollout changes after rev.
func (a *Agent) pass(ctx context.Context) (time.Duration, int64, error) {
	poll := a.cfg.PollInterval
	r, err := GetRollout(ctx, a.cfg.Client, a.cfg.Group)
	if errors.Is(err, ErrNoRollout) {
		return poll, 0, a.set(ctx, StateIdle, "", "")
	}
	if err != nil {
		return poll, 0, err
	}
	p, err := a.loadProgress(ctx)
	if err != nil {
		return poll, r.Revision, err
	}
	cur, err := a.version(ctx)
	if err != nil {
		return poll, r.Revision, err
	}
	inProgress := p != nil && p.Version == r.Version && !p.Finished
	if inProgress && p.Failed != "" {
		switch {
		case r.State == RolloutAborted:
			return poll, r.Revision, a.abandon(ctx, p, cur)
		case r.State == RolloutRunning && r.Revision > p.FailedAt:
			a.log.Info("retrying after the rollout was resumed", "failed", p.Failed)
			p.Failed, p.FailedAt = "", 0
		default:
			return poll, r.Revision, a.set(ctx, StateFailed, p.Failed, cur)
		}
	}
	if !inProgress {
		switch {
		case cur == r.Version:
			if p != nil && p.Version == r.Version {
				// Finished, but the release may not have happened (a crash
				// just before it): give the slot back, if still held.
				if err := a.sem.Release(ctx); err != nil && !errors.Is(err, semaphore.ErrNotHeld) {
					return poll, r.Revision, err
				}
			}
			return poll, r.Revision, a.set(ctx, StateDone, "", cur)
		case r.State != RolloutRunning:
			return poll, r.Revision, a.set(ctx, StateWaiting, "rollout "+r.State, cur)
		case !r.InWindow(time.Now()):
			return poll, r.Revision, a.set(ctx, StateWaiting, "outside the window", cur)
		}
		if a.cfg.BlockCmd != "" {
			if _, err := a.cfg.Run(ctx, "block", a.cfg.BlockCmd, a.env()); err != nil {
				return poll, r.Revision, a.set(ctx, StateBlocked, err.Error(), cur)
			}
		}
		if err := a.set(ctx, StateWaiting, "slot", cur); err != nil {
			return poll, r.Revision, err
		}
	}
	g, err := a.acquire(ctx, r)
	if err != nil || g == nil {
		return 0, r.Revision, err // the rollout changed while waiting: look again
	}
	defer g.Forget() // the slot stays held until released below
	if !inProgress {
		if wait, err := claimStart(ctx, a.cfg.Client, r, time.Now()); err != nil || wait > 0 {
			if err == nil {
				err = a.set(ctx, StateWaiting, "min interval", cur)
			}
			return wait, r.Revision, err // keeps the slot; the next pass re-enters it
		}
		p = &progress{Version: r.Version, Started: time.Now().UTC()}
		if err := a.saveProgress(ctx, p, g); err != nil {
			return poll, r.Revision, err
		}
		a.log.Info("upgrade started", "version", r.Version, "token", g.Token)
	}
	return a.upgrade(ctx, r, p, g)
}

// acquire takes (or re-enters) the node's slot, giving up when the rollout
// spec changes (a pause, an abort, a new rollout), so that a waiting node
// does not start an upgrade the operator no longer wants.
func (a *Agent) acquire(ctx context.Context, r *Rollout) (*semaphore.Grant, error) {
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for range a.cfg.Client.Watch(actx, rolloutKey(a.cfg.Group), clientv3.WithRev(r.Revision+1)) {
			return // any change
		}
	}()
	g, err := a.sem.Acquire(actx)
	cancel()
	wg.Wait()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
		return nil, nil
	}
	return g, err
}

// upgrade runs the steps p has not finished, recording each.
func (a *Agent) upgrade(ctx context.Context, r *Rollout, p *progress, g *semaphore.Grant) (time.Duration, int64, error) {
	poll := a.cfg.PollInterval
	for _, step := range a.steps {
		if slices.Contains(p.Done, step) {
			continue
		}
		if err := a.set(ctx, StateUpgrading, step, ""); err != nil {
			return poll, r.Revision, err
		}
		if step == StepReboot {
			// The reboot ends this process. Recorded first, it counts as done
			// when the agent starts again; if it returns, the node goes on.
			p.Done = append(p.Done, step)
			if err := a.saveProgress(ctx, p, g); err != nil {
				return poll, r.Revision, err
			}
			if _, err := a.cfg.Run(ctx, step, a.cfg.RebootCmd, a.env("COORD_TARGET_VERSION="+r.Version)); err != nil {
				if ctx.Err() != nil {
					return 0, r.Revision, ctx.Err()
				}
				return a.fail(ctx, r, p, g, err)
			}
			continue
		}
		if err := a.runStep(ctx, step, r); err != nil {
			if ctx.Err() != nil {
				return 0, r.Revision, ctx.Err() // stopped mid-step: the step runs again
			}
			return a.fail(ctx, r, p, g, err)
		}
		p.Done = append(p.Done, step)
		if err := a.saveProgress(ctx, p, g); err != nil {
			return poll, r.Revision, err
		}
	}
	v, err := a.version(ctx)
	if err != nil {
		return poll, r.Revision, err
	}
	if v != r.Version {
		return a.fail(ctx, r, p, g, fmt.Errorf("version after the upgrade is %q, want %q", v, r.Version))
	}
	p.Finished = true
	if err := a.saveProgress(ctx, p, g); err != nil {
		return poll, r.Revision, err
	}
	if err := g.Release(ctx); err != nil && !errors.Is(err, semaphore.ErrNotHeld) {
		return poll, r.Revision, err
	}
	a.log.Info("upgrade done", "version", v, "took", time.Since(p.Started).Round(time.Millisecond))
	return poll, r.Revision, a.set(ctx, StateDone, "", v)
}

// runStep runs one step's command; health retries until it passes or the
// rollout's health timeout ends.
func (a *Agent) runStep(ctx context.Context, step string, r *Rollout) error {
	cmd := map[string]string{StepDrain: a.cfg.DrainCmd, StepUpgrade: a.cfg.UpgradeCmd, StepHealth: a.cfg.HealthCmd, StepUndrain: a.cfg.UndrainCmd}[step]
	if cmd == "" {
		return nil
	}
	env := a.env("COORD_TARGET_VERSION=" + r.Version)
	if step != StepHealth {
		_, err := a.cfg.Run(ctx, step, cmd, env)
		return err
	}
	timeout := time.Duration(r.HealthTimeout)
	if a.cfg.HealthTimeout > 0 {
		timeout = a.cfg.HealthTimeout
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := a.cfg.Run(ctx, step, cmd, env)
		if err == nil {
			return nil
		}
		if !time.Now().Add(a.cfg.HealthInterval).Before(deadline) {
			return fmt.Errorf("health check still failing after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.HealthInterval):
		}
	}
}

// fail records the node's failure (it keeps its slot) and counts it
// against the rollout's budget.
func (a *Agent) fail(ctx context.Context, r *Rollout, p *progress, g *semaphore.Grant, cause error) (time.Duration, int64, error) {
	a.log.Warn("upgrade failed; keeping the slot", "err", cause)
	p.Failed, p.FailedAt = cause.Error(), r.Revision
	if err := a.saveProgress(ctx, p, g); err != nil {
		return a.cfg.PollInterval, r.Revision, err
	}
	halted, err := ReportFailure(ctx, a.cfg.Client, r, Failure{ID: a.cfg.ID, Version: r.Version, Reason: cause.Error(), At: time.Now().UTC()})
	if halted {
		a.log.Warn("failure budget reached: rollout halted", "group", r.Group)
	}
	if serr := a.set(ctx, StateFailed, p.Failed, ""); err == nil {
		err = serr
	}
	return a.cfg.PollInterval, r.Revision, err
}

// abandon gives up a failed upgrade of an aborted rollout: the slot goes
// back and the node is idle on whatever version it has.
func (a *Agent) abandon(ctx context.Context, p *progress, cur string) error {
	if err := a.sem.Release(ctx); err != nil && !errors.Is(err, semaphore.ErrNotHeld) {
		return err
	}
	p.Finished = true
	if _, err := a.ckpt.Save(ctx, a.job(), mustJSON(p)); err != nil {
		return err
	}
	return a.set(ctx, StateIdle, "rollout aborted", cur)
}

func (a *Agent) set(ctx context.Context, state, step, version string) error {
	n := a.reg.Node()
	if n.State == state && n.Step == step && (version == "" || n.Version == version) {
		return nil
	}
	return a.reg.Set(ctx, state, step, version)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // progress is plain data
	}
	return b
}

// saveProgress records p, only while g is held.
func (a *Agent) saveProgress(ctx context.Context, p *progress, g *semaphore.Grant) error {
	_, err := a.ckpt.Save(ctx, a.job(), mustJSON(p), g.Cmp())
	if errors.Is(err, checkpoint.ErrGuardFailed) {
		return ErrSlotLost
	}
	return err
}

// loadProgress reads the node's last progress; nil if it has none.
func (a *Agent) loadProgress(ctx context.Context) (*progress, error) {
	cp, err := a.ckpt.Load(ctx, a.job())
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		return nil, nil
	case cp == nil:
		return nil, err
	case err != nil:
		a.log.Warn("newest progress checkpoint unreadable; using an older one", "err", err)
	}
	var p progress
	if err := json.Unmarshal(cp.Data, &p); err != nil {
		return nil, fmt.Errorf("worker: progress checkpoint of %s: %w", a.job(), err)
	}
	return &p, nil
}

// waitChange waits d, or less if the rollout changes after rev.
func (a *Agent) waitChange(ctx context.Context, rev int64, d time.Duration) {
	if d <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	opts := []clientv3.OpOption{}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	for range a.cfg.Client.Watch(wctx, rolloutKey(a.cfg.Group), opts...) {
		return
	}
}
