package scheduler_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/scheduler"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func TestJobs(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, bad := range map[string]scheduler.Job{
		"no name":      {Schedule: "@every 1s", Command: []string{"true"}},
		"slash":        {Name: "a/b", Schedule: "@every 1s", Command: []string{"true"}},
		"bad schedule": {Name: "a", Schedule: "sometimes", Command: []string{"true"}},
		"no command":   {Name: "a", Schedule: "@every 1s"},
		"bad policy":   {Name: "a", Schedule: "@every 1s", Command: []string{"true"}, Policy: "never"},
		"bad target":   {Name: "a", Schedule: "@every 1s", Command: []string{"true"}, Target: "gpu"},
	} {
		if _, err := scheduler.CreateJob(ctx, cli, bad); !errors.Is(err, scheduler.ErrBadJob) {
			t.Errorf("%s: %v, want ErrBadJob", name, err)
		}
	}
	j, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "backup", Schedule: "*/5 * * * * *", Command: []string{"backup.sh"}})
	if err != nil || j.Policy != scheduler.PolicyForbid || j.MaxConcurrent != 1 {
		t.Fatalf("create: %+v %v", j, err)
	}
	if _, err := scheduler.CreateJob(ctx, cli, *j); !errors.Is(err, scheduler.ErrBadJob) {
		t.Fatalf("second create of one name: %v", err)
	}
	if jobs, err := scheduler.ListJobs(ctx, cli); err != nil || len(jobs) != 1 {
		t.Fatalf("list: %v %v", jobs, err)
	}
	if err := scheduler.DeleteJob(ctx, cli, "backup"); err != nil {
		t.Fatal(err)
	}
	if _, err := scheduler.GetJob(ctx, cli, "backup"); !errors.Is(err, scheduler.ErrNoJob) {
		t.Fatalf("get after delete: %v", err)
	}
}

// Passes of two schedulers at the same moments (a failover mid-tick)
// create each scheduled run exactly once; late ticks are run or recorded
// as missed by the starting deadline.
func TestFireExactlyOnce(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "tick", Schedule: "@every 10s", Command: []string{"x"},
		StartingDeadline: scheduler.Duration(15 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if runs, next, err := scheduler.Fire(ctx, cli, j, base); err != nil || len(runs) != 0 || !next.Equal(base.Add(10*time.Second)) {
		t.Fatalf("first pass: %v %v %v", runs, next, err)
	}
	// Two schedulers pass at each of 12 moments, one second apart: 10 s
	// ticks at +10 and +20 s... only the pass that wins creates a run.
	created := map[time.Time]int{}
	var mu sync.Mutex
	for s := 1; s <= 25; s++ {
		now := base.Add(time.Duration(s) * time.Second)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs, _, err := scheduler.Fire(ctx, cli, j, now)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range runs {
					created[r.Scheduled]++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if len(created) != 2 || created[base.Add(10*time.Second)] != 1 || created[base.Add(20*time.Second)] != 1 {
		t.Fatalf("runs created: %v, want one each at +10s and +20s", created)
	}
	// No scheduler for 40 s: +30 and +40 are beyond the 15 s deadline at
	// +65, +50 and +60 within it.
	runs, _, err := scheduler.Fire(ctx, cli, j, base.Add(65*time.Second))
	if err != nil || len(runs) != 2 || !runs[0].Scheduled.Equal(base.Add(50*time.Second)) || !runs[1].Scheduled.Equal(base.Add(60*time.Second)) {
		t.Fatalf("late pass: %v %v", runs, err)
	}
	all, err := scheduler.ListRuns(ctx, cli, "tick")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, r := range all {
		states[r.State]++
	}
	if states[scheduler.RunPending] != 4 || states[scheduler.RunMissed] != 2 {
		t.Fatalf("run states %v, want 4 pending and 2 missed", states)
	}
}
