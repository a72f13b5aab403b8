package harness

import (
	"context"
	"fmt"
	"math/rand/v2"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// coordinationNames is how many mutexes and elections the workers of
// coordination share: four or so workers contend for each.
const coordinationNames = 8

// runCoordination has CoordClients workers, each with a session, cycle
// through three operations of the etcd concurrency package: open and
// close a session (grant and revoke a lease), lock and unlock a mutex,
// campaign and resign an election. Each is an op.
func runCoordination(ctx context.Context, env *Env) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.CoordClients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	sessions, err := openSessions(ctx, pool, p.CoordClients, p.RequestTimeout)
	if err != nil {
		return nil, err
	}
	defer closeSessions(sessions)
	next := make([]int, len(sessions)) // per worker: the operation it does next
	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	l := loop{workers: len(sessions), duration: p.Duration, maxOps: p.MaxOps, timeout: p.RequestTimeout}
	st := l.run(ctx, func(ctx context.Context, w int, _ *rand.Rand) error {
		op := next[w]
		next[w] = (op + 1) % 3
		name := fmt.Sprintf("%d", w%coordinationNames)
		switch op {
		case 0:
			s, err := openSession(ctx, pool.of(w), p.RequestTimeout)
			if err != nil {
				return err
			}
			return s.Close()
		case 1:
			m := concurrency.NewMutex(sessions[w], "bench/mutex/"+name)
			if err := m.Lock(ctx); err != nil {
				return err
			}
			return m.Unlock(ctx)
		default:
			e := concurrency.NewElection(sessions[w], "bench/election/"+name)
			if err := e.Campaign(ctx, fmt.Sprintf("w%d", w)); err != nil {
				return err
			}
			return e.Resign(ctx)
		}
	})
	return st.result(), nil
}
