package semaphore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// herd queues n waiters on a one-slot semaphore, then hands the slot on
// `releases` times; each waiter queues again once its slot is released, so
// n-1 stay queued behind the holder. It
// returns the watch responses that woke waiters per release.
func herd(tb testing.TB, n, releases int) float64 {
	m := coordtest.StartSingle(tb)
	cli := m.Client()
	defer cli.Close()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		tb.Fatal(err)
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	holder, err := semaphore.New(sess, "herd", semaphore.WithHolderID("first"))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := holder.Acquire(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	granted := make(chan *semaphore.Grant)
	var wg sync.WaitGroup
	for i := range n {
		s, err := semaphore.New(sess, "herd", semaphore.WithHolderID(fmt.Sprintf("w%04d", i)))
		if err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				g, err := s.Acquire(ctx)
				if err != nil {
					return
				}
				select {
				case granted <- g:
				case <-ctx.Done():
					return
				}
				select {
				case <-g.Done(): // the loop below released it
				case <-ctx.Done():
					rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
					g.Release(rctx)
					rcancel()
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	waitQueued(tb, cli, n)

	before := semaphore.Wakeups()
	if b, ok := tb.(*testing.B); ok {
		b.ResetTimer()
	}
	for range releases {
		if err := g.Release(ctx); err != nil {
			tb.Fatal(err)
		}
		select {
		case g = <-granted:
		case <-ctx.Done():
			tb.Fatal("no waiter admitted after a release")
		}
		waitQueued(tb, cli, n-1) // the previous holder is queued again
	}
	return float64(semaphore.Wakeups()-before) / float64(releases)
}

func waitQueued(tb testing.TB, cli *clientv3.Client, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cli.Get(ctx, semaphore.DefaultPrefix+"herd/q/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waiters not queued after 2m, want %d (err %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHerdFree: a release wakes a constant number of waiters, however many
// wait (a thundering herd would wake all 200 on every release).
func TestHerdFree(t *testing.T) {
	perRelease := herd(t, 200, 10)
	t.Logf("%.1f wake-ups per release with 200 waiters", perRelease)
	if perRelease > 4 {
		t.Fatalf("%.1f wake-ups per release with 200 waiters: not herd-free", perRelease)
	}
}

// BenchmarkReleaseWakeups1000 reports the waiters woken per release with
// 1,000 waiters queued. Run: go test -run '^$' -bench ReleaseWakeups ./semaphore
func BenchmarkReleaseWakeups1000(b *testing.B) {
	b.ReportMetric(herd(b, 1000, b.N), "wakeups/release")
}
