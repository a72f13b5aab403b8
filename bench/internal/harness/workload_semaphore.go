package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/coordhq/coord/semaphore"
)

// semaphoreHold is how long a contender holds its slot: long enough for
// holders to overlap (so that the count of holders checks the limit), far
// too short to bound the cycles per second.
const semaphoreHold = time.Millisecond

// runSemaphore has SemaphoreClients contenders, each with its own session,
// acquire and release one semaphore of SemaphoreLimit slots in a loop; an
// op is one acquire/release cycle. It also records the most holders seen
// at once in this process, which must never exceed the limit.
func runSemaphore(ctx context.Context, env *Env) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.SemaphoreClients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	sessions, err := openSessions(ctx, pool, p.SemaphoreClients, p.RequestTimeout)
	if err != nil {
		return nil, err
	}
	defer closeSessions(sessions)
	sems := make([]*semaphore.Semaphore, len(sessions))
	for w, s := range sessions {
		sems[w], err = semaphore.New(s, "bench", semaphore.WithLimit(p.SemaphoreLimit), semaphore.WithHolderID(fmt.Sprintf("c%d", w)))
		if err != nil {
			return nil, err
		}
	}
	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	var holding, most atomic.Int64
	// A contender waits behind up to SemaphoreClients-1 others: its
	// request timeout is that of a whole queue, not of one request.
	l := loop{workers: len(sems), duration: p.Duration, maxOps: p.MaxOps, timeout: 6 * p.RequestTimeout}
	st := l.run(ctx, func(ctx context.Context, w int, _ *rand.Rand) error {
		g, err := sems[w].Acquire(ctx)
		if err != nil {
			return err
		}
		h := holding.Add(1)
		for m := most.Load(); h > m && !most.CompareAndSwap(m, h); m = most.Load() {
		}
		pause(ctx, semaphoreHold)
		holding.Add(-1)
		return g.Release(ctx)
	})
	r := st.result()
	r.Metrics[MetricMaxHolders] = float64(most.Load())
	return r, nil
}
