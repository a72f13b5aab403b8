package harness

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const txnPrefix = "bench/txn/"

// runTxn runs optimistic compare-and-put transactions on TxnKeys shared
// keys: each worker remembers the mod revision it last saw of each key and
// puts only if the key is unchanged since; otherwise it gets the key and
// so learns its revision. Both outcomes count as an op; the share that
// succeeded is reported too.
func runTxn(ctx context.Context, env *Env) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.TxnClients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	vals := newValues(p.ValueSize, 1024)
	seen := make([]map[string]int64, p.TxnClients) // per worker: key → mod revision seen
	for i := range seen {
		seen[i] = map[string]int64{}
	}
	var succeeded atomic.Int64
	l := loop{workers: p.TxnClients, duration: p.Duration, maxOps: p.MaxOps, timeout: p.RequestTimeout}
	st := l.run(ctx, func(ctx context.Context, w int, rng *rand.Rand) error {
		key := keyName(txnPrefix, rng.IntN(p.TxnKeys))
		resp, err := pool.of(w).Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", seen[w][key])).
			Then(clientv3.OpPut(key, vals.pick(rng))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			succeeded.Add(1)
			seen[w][key] = resp.Header.Revision
			return nil
		}
		var rev int64 // a key that is absent has mod revision 0
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			rev = kvs[0].ModRevision
		}
		seen[w][key] = rev
		return nil
	})
	r := st.result()
	if st.ops > 0 {
		r.Metrics[MetricTxnSuccess] = 100 * float64(succeeded.Load()) / float64(st.ops)
	}
	return r, nil
}
