// Command cron runs a throttled batch job: every second a run of a job
// that takes about 2.5 s, at most 2 at once (policy allow, max-concurrent
// 2), on two workers; an elected scheduler fires the ticks. It shows the
// runs live and a summary.
//
//	go run ./examples/cron [--endpoints host:port] [--seconds 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordhq/coord/examples/internal/exampleenv"
	"github.com/coordhq/coord/scheduler"
)

func main() {
	seconds := flag.Int("seconds", 10, "how long to let the schedule run")
	flag.Parse()
	cli, done, err := exampleenv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := fmt.Sprintf("batch-%d", time.Now().UnixNano())
	if _, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: name, Schedule: "@every 1s", Command: []string{"simulated"},
		Policy: scheduler.PolicyAllow, MaxConcurrent: 2, StartingDeadline: scheduler.Duration(time.Minute)}); err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var running, peak atomic.Int64
	work := func(ctx context.Context, command, env []string) (int, []byte, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer running.Add(-1)
		select { // the batch's work
		case <-time.After(time.Duration(2000+rand.IntN(1000)) * time.Millisecond):
		case <-ctx.Done():
		}
		return 0, []byte("batch done\n"), nil
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run((&scheduler.Scheduler{Client: cli, ID: "scheduler-1", Log: quiet}).Run)
	for _, id := range []string{"worker-1", "worker-2"} {
		run((&scheduler.Worker{Client: cli, ID: id, Slots: 2, Exec: work, Log: quiet, PollInterval: 200 * time.Millisecond}).Run)
	}

	start := time.Now()
	for time.Since(start) < time.Duration(*seconds)*time.Second {
		time.Sleep(250 * time.Millisecond)
		runs, err := scheduler.ListRuns(ctx, cli, name)
		if err != nil {
			log.Fatal(err)
		}
		c := map[string]int{}
		for _, r := range runs {
			c[r.State]++
		}
		fmt.Printf("\r%4.1fs  runs: %2d queued, %d running, %2d done   (at most %d at once)",
			time.Since(start).Seconds(), c[scheduler.RunPending], c[scheduler.RunRunning], c[scheduler.RunSucceeded], peak.Load())
	}
	cancel()
	wg.Wait()
	runs, err := scheduler.ListRuns(context.Background(), cli, name)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n\n%d ticks, %d runs finished, never more than %d at once (max-concurrent 2)\n", len(runs), count(runs), peak.Load())
	if peak.Load() > 2 {
		log.Fatal("the limit was exceeded")
	}
}

func count(runs []scheduler.Run) int {
	n := 0
	for _, r := range runs {
		if r.State == scheduler.RunSucceeded {
			n++
		}
	}
	return n
}
