package scheduler_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/scheduler"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeExec records how many commands run at once, and fails the first
// attempt of every run when failFirst is set.
type fakeExec struct {
	mu            sync.Mutex
	running, peak int
	calls         map[string]int // run id -> attempts seen
	failFirst     bool
	hold          time.Duration
}

func (f *fakeExec) exec(ctx context.Context, command []string, env []string) (int, []byte, error) {
	var run, attempt string
	for _, e := range env {
		if v, ok := cutEnv(e, "COORD_RUN="); ok {
			run = v
		}
		if v, ok := cutEnv(e, "COORD_ATTEMPT="); ok {
			attempt = v
		}
	}
	f.mu.Lock()
	f.running++
	f.peak = max(f.peak, f.running)
	f.calls[run]++
	f.mu.Unlock()
	select {
	case <-time.After(f.hold):
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.running--
	f.mu.Unlock()
	if f.failFirst && attempt == "1" {
		return 3, []byte("first attempt fails\n"), nil
	}
	return 0, []byte("ok\n"), nil
}

func cutEnv(e, p string) (string, bool) {
	if len(e) > len(p) && e[:len(p)] == p {
		return e[len(p):], true
	}
	return "", false
}

func startWorkers(t *testing.T, cli *clientv3.Client, f *fakeExec, n int) {
	startLabelled(t, cli, f, n, nil)
}

// startLabelled starts n workers on cli, stopped when the test ends. cli
// must be closed after them (a cleanup registered earlier): closed first, it
// ends their sessions, which a worker reports as an error.
func startLabelled(t *testing.T, cli *clientv3.Client, f *fakeExec, n int, labels map[string]string) {
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		w := &scheduler.Worker{Client: cli, ID: "w" + string(rune('a'+i)), Labels: labels, Slots: 2, Exec: f.exec,
			PollInterval: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		go func() {
			defer close(done)
			if err := w.Run(ctx); err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
}

func waitRuns(t *testing.T, cli *clientv3.Client, job string, ok func([]scheduler.Run) bool) []scheduler.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rs, err := scheduler.ListRuns(ctx, cli, job)
		cancel()
		if err == nil && ok(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of %s never got there: %+v (%v)", job, rs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allIn(state string, n int) func([]scheduler.Run) bool {
	return func(rs []scheduler.Run) bool {
		c := 0
		for _, r := range rs {
			if r.State == state {
				c++
			}
		}
		return c == n
	}
}

// Workers with spare slots never run two runs of a forbid job at once,
// and a failed attempt is retried after its backoff.
func TestWorkersForbidAndRetry(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	t.Cleanup(func() { cli.Close() }) // after the workers stop (cleanups run last first)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "nightly", Schedule: "@every 1s", Command: []string{"x"},
		Policy: scheduler.PolicyForbid, Retries: 1, Backoff: scheduler.Duration(50 * time.Millisecond), StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Truncate(time.Second)
	scheduler.Fire(ctx, cli, j, base)
	if _, _, err := scheduler.Fire(ctx, cli, j, base.Add(4*time.Second)); err != nil { // 4 runs at once
		t.Fatal(err)
	}
	f := &fakeExec{calls: map[string]int{}, failFirst: true, hold: 50 * time.Millisecond}
	startWorkers(t, cli, f, 3)
	rs := waitRuns(t, cli, "nightly", allIn(scheduler.RunSucceeded, 4))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peak != 1 {
		t.Fatalf("%d runs of a forbid job at once", f.peak)
	}
	for _, r := range rs {
		if r.Attempt != 2 || r.Output != "ok\n" || r.Worker == "" {
			t.Fatalf("run %+v: want attempt 2 (the retry), output and worker recorded", r)
		}
	}
}

// A run whose worker died (its claim's lease expired) is queued again as
// the next attempt, exactly once.
func TestRequeueAfterWorkerDeath(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "long", Schedule: "@every 1s", Command: []string{"x"}, StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Truncate(time.Second)
	scheduler.Fire(ctx, cli, j, base)
	scheduler.Fire(ctx, cli, j, base.Add(time.Second))
	// A worker on its own client starts the run, then "dies": its client
	// is closed without a word, so its lease must expire.
	wcli := m.Client()
	f := &fakeExec{calls: map[string]int{}, hold: time.Hour}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	w := &scheduler.Worker{Client: wcli, ID: "doomed", TTL: 1, Exec: f.exec, PollInterval: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { defer close(wdone); w.Run(wctx) }()
	waitRuns(t, cli, "long", allIn(scheduler.RunRunning, 1))
	wcli.Close() // dead: no keep-alives, no release
	defer func() { wcancel(); <-wdone }()

	// The scheduler's clock stays between the fired tick and the next one:
	// a real clock would fire base+2s while the lease expires, and whether
	// that came first depended on where in its second the test started.
	clock := &fakeClock{now: base.Add(1500 * time.Millisecond)}
	sch := &scheduler.Scheduler{Client: cli, ID: "s", Clock: clock, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := sch.Pass(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		rs, err := scheduler.ListRuns(ctx, cli, "long")
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 1 && rs[0].State == scheduler.RunPending && rs[0].Attempt == 2 && rs[0].Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not re-queued after its worker died: %+v", rs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Policy replace stops the run under way when a newer one starts; a
// timeout kills a run; a job targets only workers with its label; history
// keeps the newest finished runs.
func TestReplaceTimeoutTargetHistory(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	t.Cleanup(func() { cli.Close() }) // after the workers stop (cleanups run last first)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := time.Now().Truncate(time.Second)

	// Replace: the first run holds for an hour; the second replaces it.
	rj, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "repl", Schedule: "@every 1s", Command: []string{"x"},
		Policy: scheduler.PolicyReplace, StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Timeout: the command would run an hour.
	tj, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "slow", Schedule: "@every 1s", Command: []string{"x"},
		Timeout: scheduler.Duration(100 * time.Millisecond), StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Target: only workers labelled gpu=yes.
	gj, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "gpu", Schedule: "@every 1s", Command: []string{"x"},
		Target: "gpu=yes", StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []*scheduler.Job{rj, tj, gj} {
		scheduler.Fire(ctx, cli, j, base)
		scheduler.Fire(ctx, cli, j, base.Add(time.Second)) // one run each
	}
	f := &fakeExec{calls: map[string]int{}, hold: time.Hour}
	startWorkers(t, cli, f, 1) // no labels
	waitRuns(t, cli, "repl", allIn(scheduler.RunRunning, 1))
	waitRuns(t, cli, "slow", allIn(scheduler.RunFailed, 1))
	if rs, _ := scheduler.ListRuns(ctx, cli, "slow"); !strings.Contains(rs[0].Error, "timed out") {
		t.Fatalf("slow run: %+v, want a timeout", rs[0])
	}
	scheduler.Fire(ctx, cli, rj, base.Add(2*time.Second)) // a newer run of repl
	waitRuns(t, cli, "repl", func(rs []scheduler.Run) bool {
		return len(rs) == 2 && rs[1].State == scheduler.RunRunning && rs[0].State != scheduler.RunRunning
	})
	if rs, _ := scheduler.ListRuns(ctx, cli, "gpu"); rs[0].State != scheduler.RunPending {
		t.Fatalf("gpu run on an unlabelled worker: %+v", rs[0])
	}

	// History: 25 finished runs of a job; a pass keeps 20.
	// (Targeted at a worker of its own: the first one holds its runs an hour.)
	hj, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "hist", Schedule: "@every 1s", Command: []string{"x"},
		Target: "fast=yes", StartingDeadline: scheduler.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	scheduler.Fire(ctx, cli, hj, base)
	scheduler.Fire(ctx, cli, hj, base.Add(25*time.Second))
	g := &fakeExec{calls: map[string]int{}, hold: 0}
	startLabelled(t, cli, g, 1, map[string]string{"fast": "yes", "gpu": "no"})
	waitRuns(t, cli, "hist", allIn(scheduler.RunSucceeded, 25))
	// The scheduler's clock stays between the fired tick and the next one:
	// a real clock would fire base+2s while the lease expires, and whether
	// that came first depended on where in its second the test started.
	clock := &fakeClock{now: base.Add(1500 * time.Millisecond)}
	sch := &scheduler.Scheduler{Client: cli, ID: "s", Clock: clock, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, _, err := sch.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if rs, _ := scheduler.ListRuns(ctx, cli, "hist"); len(rs) != scheduler.HistoryKept || !rs[len(rs)-1].Scheduled.Equal(base.Add(25*time.Second)) {
		t.Fatalf("history: %d runs, last %v; want the newest %d", len(rs), rs[len(rs)-1].Scheduled, scheduler.HistoryKept)
	}
}
