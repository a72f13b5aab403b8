package harness

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const loadPrefix = "bench/load/"

// runLoad loads LoadKeys keys into a single member, in txns of LoadBatch
// puts from LoadClients workers; its throughput is in keys per second and
// its latencies are those of the txns. It then kills the member with
// SIGKILL, starts it again, and measures the time from the new process's
// start to the first linearizable get of the last key loaded; finally it
// checks that every key survived. The CPU time reported is the load's.
func runLoad(ctx context.Context, env *Env) (*Result, error) {
	p, cl := env.Params, env.Cluster
	if cl.Size() != 1 {
		return nil, fmt.Errorf("harness: load-1m runs on one node, not %d", cl.Size())
	}
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.LoadClients))
	if err != nil {
		return nil, err
	}
	vals := newValues(p.ValueSize, 4096)
	st, err := preload(ctx, pool, loadPrefix, p.LoadKeys, p.LoadBatch, p.LoadClients, vals, p.RequestTimeout)
	pool.Close()
	if err != nil {
		return nil, err
	}
	if err := env.EndMeasure(); err != nil {
		return nil, err
	}
	slices.Sort(st.lat)
	r := st.result()
	r.Ops = int64(p.LoadKeys)
	r.Metrics[MetricThroughput] = float64(p.LoadKeys) / st.elapsed.Seconds()

	if err := cl.Kill(0); err != nil {
		return nil, err
	}
	started, err := cl.Restart(0)
	if err != nil {
		return nil, err
	}
	last := keyName(loadPrefix, p.LoadKeys-1)
	served, err := waitServing(ctx, cl.Endpoint(0), last, p)
	if err != nil {
		return nil, err
	}
	r.Metrics[MetricRestart] = served.Sub(started).Seconds()

	n, err := countKeys(ctx, cl.Endpoint(0), loadPrefix, p.RecoveryTimeout)
	if err != nil {
		return nil, err
	}
	r.Metrics[MetricKeysAfterStart] = float64(n)
	if n != int64(p.LoadKeys) {
		r.Errors++
		r.FirstError = fmt.Sprintf("%v: %d of %d keys after restart", errWrongRead, n, p.LoadKeys)
	}
	if rss, err := cl.PeakRSS(0); err == nil {
		r.Metrics[MetricRestartRSS] = float64(rss) / mib
	}
	return r, nil
}

// waitServing waits until a linearizable get of key through endpoint
// returns a value of the size written, and returns when it did. It dials
// TCP until the port accepts first, because a gRPC client that finds the
// port closed backs off for a second before it tries again. A get that
// succeeds without the key is data loss, and an error.
func waitServing(ctx context.Context, endpoint, key string, p Params) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, p.RecoveryTimeout)
	defer cancel()
	host := strings.TrimPrefix(endpoint, "http://")
	for {
		conn, err := net.DialTimeout("tcp", host, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("%w: port of %s: %v", errNotRecovered, endpoint, err)
		}
		pause(ctx, 2*time.Millisecond)
	}
	cli, err := newClient([]string{endpoint})
	if err != nil {
		return time.Time{}, err
	}
	defer cli.Close()
	for {
		gctx, gcancel := context.WithTimeout(ctx, time.Second)
		resp, err := cli.Get(gctx, key)
		gcancel()
		switch {
		case err == nil && len(resp.Kvs) == 1 && len(resp.Kvs[0].Value) == p.ValueSize:
			return time.Now(), nil
		case err == nil:
			return time.Time{}, fmt.Errorf("%w: %s after restart: %d kvs", errWrongRead, key, len(resp.Kvs))
		case ctx.Err() != nil:
			return time.Time{}, fmt.Errorf("%w: get %s: %v", errNotRecovered, key, err)
		}
		pause(ctx, 2*time.Millisecond)
	}
}

// countKeys counts the keys under prefix, linearizably.
func countKeys(ctx context.Context, endpoint, prefix string, timeout time.Duration) (int64, error) {
	cli, err := newClient([]string{endpoint})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("harness: count %s: %w", prefix, err)
	}
	return resp.Count, nil
}
