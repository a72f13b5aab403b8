package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Metadata keys the Loop saves with each checkpoint.
const (
	// MetaStep is the number of steps completed, over every run of the job,
	// when the checkpoint was taken (a decimal string).
	MetaStep = "coord.loop.step"
	// MetaDone is "true" on the checkpoint of a finished computation.
	MetaDone = "coord.loop.done"
)

// Loop runs a long computation as a sequence of steps over a state, saves
// the state as a checkpoint of Job every Every or every EverySteps steps,
// whichever comes first, and when the computation is done; and on start
// resumes from the newest checkpoint. If both Every and EverySteps are
// zero, it saves after every step.
//
// A run that stops (a crash, a cancelled context, a failed save) loses the
// steps since the last checkpoint: the next run does them again. Steps
// before that checkpoint are never done again, unless it is found corrupt
// and Run resumes from the one before (see OnCorrupt).
type Loop struct {
	// Store and Job say where the checkpoints go. Required.
	Store *Store
	Job   string
	// Every and EverySteps are the save policy; see Loop.
	Every      time.Duration
	EverySteps int
	// Guards, if set, is called before each save; the save holds only if
	// the guards it returns hold (see Store.Save), and Run stops with
	// ErrGuardFailed otherwise.
	Guards func() []clientv3.Cmp
	// Clock measures Every (default time.Now).
	Clock func() time.Time
	// OnSave, if set, is called after each save, on Run's goroutine.
	OnSave func(Progress)
	// OnCorrupt, if set, is called when Run resumes from an older
	// checkpoint because newer ones are torn or corrupt (see Store.Load);
	// err wraps ErrCorrupt. Run resumes from that checkpoint either way.
	OnCorrupt func(err error)
}

// Progress describes a checkpoint the Loop just saved.
type Progress struct {
	Info
	// Step is the number of steps completed over every run of the job.
	Step int64
	// Done says the computation finished: this is its final state.
	Done bool
}

// Run resumes the computation from the newest checkpoint of the job, or
// starts it from init() (nil if init is nil) if there is none, and calls
// step until step says it is done, saving per the policy. It returns the
// final state, and whether it resumed. If the newest checkpoint is of a
// finished computation, Run returns its state at once without calling
// step.
//
// step gets the current state and returns the next one; it may reuse the
// state's memory, because Run saves between steps, never during one. On
// an error (from step, from a save, or ctx), Run stops and returns the
// last state step returned with the error; only what was saved survives.
// If every checkpoint of the job is corrupt, Run returns an error wrapping
// ErrCorrupt rather than start again from init: Delete the job to start
// over.
func (l *Loop) Run(ctx context.Context, init func() []byte, step func(ctx context.Context, state []byte) (next []byte, done bool, err error)) (final []byte, resumed bool, err error) {
	if l.Store == nil {
		return nil, false, errors.New("checkpoint: Loop without a Store")
	}
	if l.Every < 0 || l.EverySteps < 0 {
		return nil, false, fmt.Errorf("checkpoint: Loop of job %q: negative save interval", l.Job)
	}
	now := l.Clock
	if now == nil {
		now = time.Now
	}

	state, steps, done, resumed, err := l.resume(ctx, init)
	if err != nil || done {
		return state, resumed, err
	}
	lastSave, sinceSave := now(), 0
	for {
		if err := ctx.Err(); err != nil {
			return state, resumed, err
		}
		next, fin, err := step(ctx, state)
		if err != nil {
			return state, resumed, fmt.Errorf("checkpoint: job %q: step %d: %w", l.Job, steps+1, err)
		}
		state, steps, sinceSave = next, steps+1, sinceSave+1
		due := fin ||
			(l.Every == 0 && l.EverySteps == 0) ||
			(l.EverySteps > 0 && sinceSave >= l.EverySteps) ||
			(l.Every > 0 && now().Sub(lastSave) >= l.Every)
		if due {
			if err := l.save(ctx, state, steps, fin); err != nil {
				return state, resumed, err
			}
			lastSave, sinceSave = now(), 0
		}
		if fin {
			return state, resumed, nil
		}
	}
}

// resume loads the newest checkpoint, or starts from init.
func (l *Loop) resume(ctx context.Context, init func() []byte) (state []byte, steps int64, done, resumed bool, err error) {
	cp, err := l.Store.Load(ctx, l.Job)
	switch {
	case errors.Is(err, ErrNotFound):
		if init == nil {
			return nil, 0, false, false, nil
		}
		return init(), 0, false, false, nil
	case errors.Is(err, ErrCorrupt) && cp != nil:
		if l.OnCorrupt != nil {
			l.OnCorrupt(err)
		}
	case err != nil:
		return nil, 0, false, false, err
	}
	// A checkpoint that Save wrote without a Loop counts from step 0.
	steps, _ = strconv.ParseInt(cp.Meta[MetaStep], 10, 64)
	return cp.Data, max(steps, 0), cp.Meta[MetaDone] == "true", true, nil
}

func (l *Loop) save(ctx context.Context, state []byte, steps int64, done bool) error {
	meta := map[string]string{MetaStep: strconv.FormatInt(steps, 10)}
	if done {
		meta[MetaDone] = "true"
	}
	var guards []clientv3.Cmp
	if l.Guards != nil {
		guards = l.Guards()
	}
	info, err := l.Store.SaveMeta(ctx, l.Job, state, meta, guards...)
	if err != nil {
		return err
	}
	if l.OnSave != nil {
		l.OnSave(Progress{Info: info, Step: steps, Done: done})
	}
	return nil
}
