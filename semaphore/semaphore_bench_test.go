package semaphore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// BenchmarkAcquireRelease measures acquire/release cycles of a one-slot
// semaphore on a single coordd member, with 1, 10 and 100 contenders.
// Run: go test -run '^$' -bench AcquireRelease -benchtime 200x ./semaphore
func BenchmarkAcquireRelease(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("contenders=%d", n), func(b *testing.B) {
			m := coordtest.StartSingle(b)
			cli := m.Client()
			defer cli.Close()
			sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range n {
				s, err := semaphore.New(sess, "bench", semaphore.WithHolderID(fmt.Sprintf("c%d", i)))
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						g, err := s.Acquire(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if err := g.Release(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
		})
	}
}
