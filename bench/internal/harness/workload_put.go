package harness

import (
	"context"
	"math/rand/v2"
)

const putPrefix = "bench/put/"

// runPut1 puts random keys from one client, one request at a time: the
// latency of a single write.
func runPut1(ctx context.Context, env *Env) (*Result, error) {
	return runPut(ctx, env, 1, 1)
}

// runPutMany puts random keys from Clients workers over Conns connections:
// the write throughput under load.
func runPutMany(ctx context.Context, env *Env) (*Result, error) {
	return runPut(ctx, env, env.Params.Clients, env.Params.Conns)
}

func runPut(ctx context.Context, env *Env, clients, conns int) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(conns, clients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	vals := newValues(p.ValueSize, 1024)
	l := loop{workers: clients, duration: p.Duration, maxOps: p.MaxOps, timeout: p.RequestTimeout}
	st := l.run(ctx, func(ctx context.Context, w int, rng *rand.Rand) error {
		_, err := pool.of(w).Put(ctx, keyName(putPrefix, rng.IntN(p.Keyspace)), vals.pick(rng))
		return err
	})
	return st.result(), nil
}
