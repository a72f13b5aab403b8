package harness

import (
	"context"
	"fmt"
	"math/rand/v2"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const rangePrefix = "bench/range/"

// runRangeLinearizable gets single keys, linearizably (a read index
// round), from Clients workers.
func runRangeLinearizable(ctx context.Context, env *Env) (*Result, error) {
	return runRange(ctx, env)
}

// runRangeSerializable gets single keys from the member's local state.
func runRangeSerializable(ctx context.Context, env *Env) (*Result, error) {
	return runRange(ctx, env, clientv3.WithSerializable())
}

// runRange preloads the keyspace, then gets random keys of it; a get that
// does not find its key counts as an error.
func runRange(ctx context.Context, env *Env, opts ...clientv3.OpOption) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.Clients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	vals := newValues(p.ValueSize, 1024)
	if _, err := preload(ctx, pool, rangePrefix, p.Keyspace, p.LoadBatch, len(pool)*2, vals, p.RequestTimeout); err != nil {
		return nil, err
	}
	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	l := loop{workers: p.Clients, duration: p.Duration, maxOps: p.MaxOps, timeout: p.RequestTimeout}
	st := l.run(ctx, func(ctx context.Context, w int, rng *rand.Rand) error {
		key := keyName(rangePrefix, rng.IntN(p.Keyspace))
		resp, err := pool.of(w).Get(ctx, key, opts...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != p.ValueSize {
			return fmt.Errorf("%w: %s (%d kvs)", errWrongRead, key, len(resp.Kvs))
		}
		return nil
	})
	return st.result(), nil
}
