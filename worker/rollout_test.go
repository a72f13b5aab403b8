package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	"github.com/coordhq/coord/worker"
)

func TestRolloutControl(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, bad := range map[string]worker.Rollout{
		"no version":      {Group: "g", MaxParallel: 1},
		"no parallelism":  {Group: "g", Version: "2"},
		"bad group":       {Group: "a/b", Version: "2", MaxParallel: 1},
		"negative budget": {Group: "g", Version: "2", MaxParallel: 1, FailureBudget: -1},
		"bad window":      {Group: "g", Version: "2", MaxParallel: 1, Window: "every day", WindowDuration: worker.Duration(time.Hour)},
		"window, no span": {Group: "g", Version: "2", MaxParallel: 1, Window: "@daily"},
	} {
		if _, err := worker.StartRollout(ctx, cli, bad); !errors.Is(err, worker.ErrBadRollout) {
			t.Errorf("%s: %v, want ErrBadRollout", name, err)
		}
	}
	if _, err := worker.GetRollout(ctx, cli, "g"); !errors.Is(err, worker.ErrNoRollout) {
		t.Fatalf("no rollout yet: %v", err)
	}
	r, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: "g", Version: "2", MaxParallel: 3, FailureBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != worker.RolloutRunning || time.Duration(r.HealthTimeout) != worker.DefaultHealthTimeout {
		t.Fatalf("started: %+v", r)
	}
	st, err := semaphore.GetStatus(ctx, cli, "rollout-g")
	if err != nil || st.Limit != 3 {
		t.Fatalf("semaphore limit %v %v, want 3", st, err)
	}

	// One failure is within the budget of 1; the second halts the rollout.
	if halted, err := worker.ReportFailure(ctx, cli, r, worker.Failure{ID: "n1", Version: "2", Reason: "health"}); err != nil || halted {
		t.Fatalf("first failure: halted=%v %v", halted, err)
	}
	if halted, err := worker.ReportFailure(ctx, cli, r, worker.Failure{ID: "n2", Version: "2", Reason: "health"}); err != nil || !halted {
		t.Fatalf("second failure: halted=%v %v, want halted", halted, err)
	}
	got, _ := worker.GetRollout(ctx, cli, "g")
	if got.State != worker.RolloutHalted || got.Reason == "" {
		t.Fatalf("after the budget: %+v", got)
	}
	if _, err := worker.ResumeRollout(ctx, cli, "g"); err != nil {
		t.Fatal(err)
	}
	if f, _ := worker.Failures(ctx, cli, "g"); len(f) != 0 {
		t.Fatalf("failures after resume: %v", f)
	}
	if _, err := worker.PauseRollout(ctx, cli, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.PauseRollout(ctx, cli, "g"); err == nil {
		t.Fatal("pausing a paused rollout: no error")
	}
	if r, err := worker.AbortRollout(ctx, cli, "g"); err != nil || r.State != worker.RolloutAborted {
		t.Fatalf("abort: %+v %v", r, err)
	}
	if _, err := worker.ResumeRollout(ctx, cli, "g"); err == nil {
		t.Fatal("resuming an aborted rollout: no error")
	}
}

func TestInWindow(t *testing.T) {
	r := worker.Rollout{Window: "0 2 * * *", WindowDuration: worker.Duration(2 * time.Hour)} // 02:00-04:00 daily
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{time.Hour, false}, {2 * time.Hour, true}, {3*time.Hour + 59*time.Minute, true}, {4 * time.Hour, false}, {23 * time.Hour, false}} {
		if got := r.InWindow(day.Add(c.at)); got != c.want {
			t.Errorf("InWindow(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	if !(&worker.Rollout{}).InWindow(day) {
		t.Error("a rollout without a window is always in it")
	}
}

func TestMinInterval(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &worker.Rollout{Group: "g", MinInterval: worker.Duration(10 * time.Minute)}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if wait, err := worker.ClaimStart(ctx, cli, r, now); err != nil || wait != 0 {
		t.Fatalf("first start: wait %v %v", wait, err)
	}
	if wait, err := worker.ClaimStart(ctx, cli, r, now.Add(4*time.Minute)); err != nil || wait != 6*time.Minute {
		t.Fatalf("4 minutes later: wait %v %v, want 6m", wait, err)
	}
	if wait, err := worker.ClaimStart(ctx, cli, r, now.Add(10*time.Minute)); err != nil || wait != 0 {
		t.Fatalf("10 minutes later: wait %v %v, want 0", wait, err)
	}
}
