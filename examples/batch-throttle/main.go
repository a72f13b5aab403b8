// Command batch-throttle runs 50 jobs through a semaphore of 4 slots and
// shows that never more than 4 run at once.
//
//	go run ./examples/batch-throttle [--endpoints host:port]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordhq/coord/examples/internal/exampleenv"
	"github.com/coordhq/coord/semaphore"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func main() {
	jobs := flag.Int("jobs", 50, "jobs to run")
	slots := flag.Int("slots", 4, "jobs at once")
	flag.Parse()
	cli, done, err := exampleenv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer done()
	ctx := context.Background()
	// A fresh name per run, so that runs do not share a limit or a queue.
	name := fmt.Sprintf("batch-%d", time.Now().UnixNano())
	if err := semaphore.SetLimit(ctx, cli, name, *slots); err != nil {
		log.Fatal(err)
	}
	var running, peak, finished atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each job is its own participant, as a job on another machine would be.
			sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
			if err != nil {
				log.Fatal(err)
			}
			defer sess.Close()
			sem, err := semaphore.New(sess, name, semaphore.WithHolderID(fmt.Sprintf("job-%02d", i)))
			if err != nil {
				log.Fatal(err)
			}
			g, err := sem.Acquire(ctx)
			if err != nil {
				log.Fatal(err)
			}
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond) // the job's work
			running.Add(-1)
			if err := g.Release(ctx); err != nil {
				log.Fatal(err)
			}
			f := finished.Add(1)
			fmt.Printf("\rjobs done %2d/%d, running now %d (token %d)   ", f, *jobs, running.Load(), g.Token)
		}()
	}
	wg.Wait()
	fmt.Printf("\n%d jobs in %v; never more than %d at once (limit %d)\n", *jobs, time.Since(start).Round(time.Millisecond), peak.Load(), *slots)
	if peak.Load() > int64(*slots) {
		log.Fatalf("the limit was exceeded")
	}
}
