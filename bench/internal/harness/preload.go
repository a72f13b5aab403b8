package harness

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// preload writes keys prefix+0 .. prefix+(n-1), batch puts per txn, from
// workers workers spread over pool. A txn that fails is tried again, twice;
// a third failure fails the preload. The stats are those of the txns.
func preload(ctx context.Context, pool clientPool, prefix string, n, batch, workers int, vals values, timeout time.Duration) (stats, error) {
	batches := (n + batch - 1) / batch
	var (
		next  atomic.Int64
		mu    sync.Mutex
		total stats
		fail  error
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			var s stats
			ops := make([]clientv3.Op, 0, batch)
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || ctx.Err() != nil {
					break
				}
				ops = ops[:0]
				for i := b * batch; i < min((b+1)*batch, n); i++ {
					ops = append(ops, clientv3.OpPut(keyName(prefix, i), vals[i%len(vals)]))
				}
				err := txnRetrying(ctx, pool.of(w), ops, timeout, &s)
				if err != nil {
					mu.Lock()
					if fail == nil {
						fail = fmt.Errorf("harness: preload batch %d of %d: %w", b, batches, err)
					}
					mu.Unlock()
					cancel()
					break
				}
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	if fail == nil && ctx.Err() != nil {
		fail = ctx.Err()
	}
	return total, fail
}

// txnRetrying commits ops in one txn, trying three times, and counts the
// attempts in s.
func txnRetrying(ctx context.Context, cli *clientv3.Client, ops []clientv3.Op, timeout time.Duration, s *stats) error {
	var err error
	for range 3 {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		t0 := time.Now()
		_, err = cli.Txn(tctx).Then(ops...).Commit()
		d := time.Since(t0)
		cancel()
		if err == nil {
			s.ops++
			s.lat = append(s.lat, d)
			return nil
		}
		s.errs++
		if s.firstErr == nil {
			s.firstErr = err
		}
		if ctx.Err() != nil {
			return err
		}
		pause(ctx, errorPause)
	}
	return err
}
