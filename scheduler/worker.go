package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Worker claims runs and executes their commands, at most Slots at once.
type Worker struct {
	Client *clientv3.Client
	ID     string
	Labels map[string]string
	Slots  int // default 1
	TTL    int // session TTL in seconds (default 5): how soon a dead worker's runs are re-queued
	Log    *slog.Logger
	// Exec runs a command; the default runs it as a process with env added.
	// It returns the exit code and the combined output.
	Exec func(ctx context.Context, command []string, env []string) (exit int, output []byte, err error)
	// PollInterval bounds the pause between looks for runs (default 1 s).
	PollInterval time.Duration
}

// Run claims and executes runs until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	if w.Slots <= 0 {
		w.Slots = 1
	}
	if w.TTL <= 0 {
		w.TTL = 5
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.Exec == nil {
		w.Exec = execCommand
	}
	if w.PollInterval <= 0 {
		w.PollInterval = time.Second
	}
	sess, err := concurrency.NewSession(w.Client, concurrency.WithTTL(w.TTL), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer sess.Close()
	slots := make(chan struct{}, w.Slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		select {
		case <-sess.Done():
			if ctx.Err() != nil {
				return nil // stopping: the session ends with ctx
			}
			return errors.New("scheduler: worker session lost")
		default:
		}
		rev := w.claimSome(ctx, sess.Lease(), slots, &wg)
		wctx, cancel := context.WithTimeout(ctx, w.PollInterval)
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev+1))
		}
		select { // a new or changed run, a free slot, or the poll interval
		case <-w.Client.Watch(wctx, Prefix+"runs/", opts...):
		case <-wctx.Done():
		}
		cancel()
	}
	return nil
}

// claimSome claims as many claimable runs as it has free slots.
func (w *Worker) claimSome(ctx context.Context, lease clientv3.LeaseID, slots chan struct{}, wg *sync.WaitGroup) int64 {
	now := time.Now()
	runs, jobs, err := claimable(ctx, w.Client, w.Labels, now)
	if err != nil {
		w.Log.Warn("listing runs failed", "err", err)
		return 0
	}
	var rev int64
	for _, p := range runs {
		rev = max(rev, p.kv.ModRevision)
		select {
		case slots <- struct{}{}:
		default:
			return rev // all slots busy
		}
		j := jobs[p.run.Job]
		r, claimRev, err := claim(ctx, w.Client, j, p, w.ID, lease, now)
		if err != nil || r == nil {
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			w.execute(ctx, j, p.key, *r, claimRev)
		}()
	}
	return rev
}

// execute runs one claimed run and records how it ended. The command is
// stopped if the claim goes (replaced, or the run was taken away), or its
// timeout passes.
func (w *Worker) execute(ctx context.Context, j *Job, key string, r Run, claimRev int64) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if j.Timeout > 0 {
		var tcancel context.CancelFunc
		rctx, tcancel = context.WithTimeout(rctx, time.Duration(j.Timeout))
		defer tcancel()
	}
	lost := make(chan struct{})
	go func() { // the claim's deletion stops the command
		defer close(lost)
		for wr := range w.Client.Watch(rctx, claimKey(j.Name, key), clientv3.WithRev(claimRev+1)) {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					cancel()
					return
				}
			}
		}
	}()
	env := []string{"COORD_JOB=" + j.Name, "COORD_RUN=" + runID(key), "COORD_ATTEMPT=" + strconv.Itoa(r.Attempt)}
	w.Log.Info("run started", "job", j.Name, "run", runID(key), "attempt", r.Attempt)
	exit, out, err := w.Exec(rctx, j.Command, env)
	timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	<-lost
	if ctx.Err() != nil {
		return // the worker stops: its claim goes with its lease, the run is re-queued
	}
	if len(out) > OutputTail {
		out = out[len(out)-OutputTail:]
	}
	r.ExitCode, r.Output = exit, string(out)
	switch {
	case timedOut:
		r.State, r.Error = RunFailed, fmt.Sprintf("timed out after %v", time.Duration(j.Timeout))
	case err != nil:
		r.State, r.Error = RunFailed, err.Error()
	case exit != 0:
		r.State, r.Error = RunFailed, fmt.Sprintf("exit status %d", exit)
	default:
		r.State = RunSucceeded
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := finish(fctx, w.Client, j, key, r, claimRev, time.Now()); err != nil {
		w.Log.Warn("recording the run failed", "job", j.Name, "err", err)
	}
}

func execCommand(ctx context.Context, command []string, env []string) (int, []byte, error) {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.Bytes(), nil
	}
	return 0, out.Bytes(), err
}
