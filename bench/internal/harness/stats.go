package harness

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loop is a closed-loop load: workers each issue one request at a time,
// until the duration has passed, maxOps requests were issued, or the
// context ends. Each request gets its own timeout.
type loop struct {
	workers  int
	duration time.Duration
	maxOps   int64
	timeout  time.Duration
}

// opFunc issues one request as worker w; ctx carries the request's
// timeout; rng is the worker's own.
type opFunc func(ctx context.Context, w int, rng *rand.Rand) error

// stats is what a load measured.
type stats struct {
	ops      int64 // requests that succeeded
	errs     int64 // requests that failed, not counting those cut off at the end
	firstErr error
	elapsed  time.Duration
	lat      []time.Duration // of the successful requests, sorted
}

// errorPause is how long a worker waits after a failed request, so that a
// dead server is not hammered in a tight loop.
const errorPause = 5 * time.Millisecond

// run runs op in the loop and returns what it measured. When the time is
// up, requests in flight are cancelled (not timed out: a server-side
// deadline would read as a failure) and count neither as ops nor as errors.
func (l loop) run(ctx context.Context, op opFunc) stats {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	timer := time.AfterFunc(l.duration, stop)
	defer timer.Stop()
	var (
		issued atomic.Int64
		mu     sync.Mutex
		total  stats
		wg     sync.WaitGroup
	)
	start := time.Now()
	for w := range l.workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
			var s stats
			for runCtx.Err() == nil && (l.maxOps <= 0 || issued.Add(1) <= l.maxOps) {
				rctx, rcancel := context.WithTimeout(runCtx, l.timeout)
				t0 := time.Now()
				err := op(rctx, w, rng)
				d := time.Since(t0)
				rcancel()
				if err == nil {
					s.ops++
					s.lat = append(s.lat, d)
					continue
				}
				if runCtx.Err() != nil {
					break
				}
				s.errs++
				if s.firstErr == nil {
					s.firstErr = err
				}
				pause(runCtx, errorPause)
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		})
	}
	wg.Wait()
	// Requests cut off at the end are not counted, and neither is the
	// time they take to return.
	total.elapsed = min(time.Since(start), l.duration)
	slices.Sort(total.lat)
	return total
}

// merge adds o's counts and latencies to s (leaving them unsorted).
func (s *stats) merge(o stats) {
	s.ops += o.ops
	s.errs += o.errs
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.lat = append(s.lat, o.lat...)
}

// result turns the stats into a Result with throughput and latencies.
func (s stats) result() *Result {
	r := newResult()
	r.Ops, r.Errors, r.Elapsed = s.ops, s.errs, s.elapsed
	if s.firstErr != nil {
		r.FirstError = s.firstErr.Error()
	}
	if s.elapsed > 0 {
		r.Metrics[MetricThroughput] = float64(s.ops) / s.elapsed.Seconds()
	}
	if len(s.lat) > 0 {
		r.Metrics[MetricP50] = millis(percentile(s.lat, 0.50))
		r.Metrics[MetricP99] = millis(percentile(s.lat, 0.99))
	}
	return r
}

// percentile returns the q-quantile (0 < q <= 1) of sorted latencies, by
// the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
