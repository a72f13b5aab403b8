package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/scheduler"
)

// fakeClock moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Two schedulers share the clock; the leader fires each tick once; when it
// stops, the other takes over without doubling or losing a tick.
func TestSchedulersFailOver(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clock := &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	if _, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "j", Schedule: "@every 1s", Command: []string{"x"},
		StartingDeadline: scheduler.Duration(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.Default()
	}
	start := func(id string) (stop func()) {
		sctx, scancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s := &scheduler.Scheduler{Client: cli, ID: id, Clock: clock, Log: quiet, MaxWait: time.Second}
			if err := s.Run(sctx); err != nil {
				t.Errorf("scheduler %s: %v", id, err)
			}
		}()
		return func() { scancel(); <-done }
	}
	stopA := start("a")
	stopB := start("b")
	defer stopA() // both are safe to call twice
	defer stopB()

	runs := func() int {
		rs, err := scheduler.ListRuns(ctx, cli, "j")
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	// drive moves the clock 100 ms per 5 ms of real time until the job has
	// want runs: however the schedulers' reads of the clock interleave with
	// it, every tick is passed.
	drive := func(want int) {
		deadline := time.Now().Add(20 * time.Second)
		for runs() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d runs, want %d", runs(), want)
			}
			clock.Advance(100 * time.Millisecond)
			time.Sleep(5 * time.Millisecond)
		}
	}
	drive(3)
	stopA() // a failover (a resigns; if b led, nothing changes)
	drive(8)
	stopB()
	rs, err := scheduler.ListRuns(ctx, cli, "j")
	if err != nil {
		t.Fatal(err)
	}
	// One run per second from the first tick on: no tick doubled, none lost
	// (all were within the starting deadline).
	for i, r := range rs {
		if r.State != scheduler.RunPending {
			t.Fatalf("run %v is %s", r.Scheduled, r.State)
		}
		if i > 0 && r.Scheduled.Sub(rs[i-1].Scheduled) != time.Second {
			t.Fatalf("runs %v then %v: a tick doubled or lost", rs[i-1].Scheduled, r.Scheduled)
		}
	}
	if len(rs) < 8 {
		t.Fatalf("%d runs", len(rs))
	}
}
