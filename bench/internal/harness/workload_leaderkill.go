package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const killPrefix = "bench/kill/"

// The writes of leader-kill are open-loop: each member gets a write every
// killWriteInterval whatever the earlier ones do, because a write to a
// member without a leader may hang until its timeout; closed-loop writers,
// all started together by the kill, would then measure their timeouts.
const (
	killWriteInterval = 10 * time.Millisecond
	killWriteTimeout  = time.Second
	// killMaxInFlight bounds the writes in flight per member: a second's
	// worth, the most the timeout allows.
	killMaxInFlight = int(killWriteTimeout / killWriteInterval)
)

// killWatch is what the writers of leader-kill share.
type killWatch struct {
	gone      atomic.Int64           // UnixNano when the leader was reaped; 0 before
	leader    atomic.Int64           // index of the member killed; -1 before
	ok, fail  atomic.Int64           // writes accepted and failed
	firstFail atomic.Pointer[string] // through a surviving member, after the kill
	recovered chan time.Time         // the first accepted write started after gone; buffered 1
}

// runLeaderKill writes continuously through every member, finds the
// leader with the Status RPC, kills it with SIGKILL, and measures the time
// from the kill until a write started after the leader was gone is
// accepted. Writes that fail meanwhile are expected, and reported apart
// from errors.
func runLeaderKill(ctx context.Context, env *Env) (*Result, error) {
	p, cl := env.Params, env.Cluster
	if cl.Size() < 3 {
		return nil, fmt.Errorf("harness: leader-kill needs 3 nodes, not %d", cl.Size())
	}
	clients := make(clientPool, 0, cl.Size())
	defer func() { clients.Close() }() // the clients appended below
	for i := range cl.Size() {
		cli, err := newClient([]string{cl.Endpoint(i)})
		if err != nil {
			return nil, err
		}
		clients = append(clients, cli)
	}
	vals := newValues(p.ValueSize, 256)

	kw := &killWatch{recovered: make(chan time.Time, 1)}
	kw.leader.Store(-1)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	for i, cli := range clients {
		wg.Go(func() { kw.writeEvery(wctx, i, cli, vals, p.Keyspace) })
	}

	pause(ctx, p.KillWarmup)
	if kw.ok.Load() == 0 {
		return nil, fmt.Errorf("%w: no write succeeded before the kill", errNoOps)
	}
	leader, err := cl.Leader(ctx)
	if err != nil {
		return nil, err
	}
	failedBefore := kw.fail.Load()
	kw.leader.Store(int64(leader))
	killed := time.Now()
	if err := cl.Kill(leader); err != nil {
		return nil, err
	}
	kw.gone.Store(time.Now().UnixNano())
	timeout := time.NewTimer(p.RecoveryTimeout)
	defer timeout.Stop()
	var at time.Time
	select {
	case at = <-kw.recovered:
	case <-timeout.C:
		return nil, fmt.Errorf("%w: no write accepted %v after the leader was killed", errNotRecovered, p.RecoveryTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	stop()
	wg.Wait()
	r := newResult()
	r.Ops = kw.ok.Load()
	r.Elapsed = time.Since(killed)
	r.Metrics[MetricTimeToWrites] = at.Sub(killed).Seconds()
	r.Metrics[MetricFailedWrites] = float64(kw.fail.Load() - failedBefore)
	if f := kw.firstFail.Load(); f != nil {
		r.FirstError = "expected, during the failover: " + *f
	}
	return r, nil
}

// writeEvery starts a put of a random key through member's client cli
// every killWriteInterval until ctx ends, and waits for the puts.
func (kw *killWatch) writeEvery(ctx context.Context, member int, cli *clientv3.Client, vals values, keyspace int) {
	rng := rand.New(rand.NewPCG(uint64(member), 7))
	tick := time.NewTicker(killWriteInterval)
	defer tick.Stop()
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if inFlight.Load() >= int64(killMaxInFlight) {
			continue
		}
		inFlight.Add(1)
		key, val := keyName(killPrefix, rng.IntN(keyspace)), vals.pick(rng)
		wg.Go(func() {
			defer inFlight.Add(-1)
			kw.write(ctx, member, cli, key, val)
		})
	}
}

// write puts key and counts the outcome. It reports on recovered an
// accepted write that started after the leader was gone, and records the
// first failure through a survivor.
func (kw *killWatch) write(ctx context.Context, member int, cli *clientv3.Client, key, val string) {
	t0 := time.Now().UnixNano()
	pctx, cancel := context.WithTimeout(ctx, killWriteTimeout)
	_, err := cli.Put(pctx, key, val)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			kw.fail.Add(1)
			if kw.gone.Load() != 0 && kw.leader.Load() != int64(member) {
				msg := err.Error()
				kw.firstFail.CompareAndSwap(nil, &msg)
			}
		}
		return
	}
	kw.ok.Add(1)
	if g := kw.gone.Load(); g != 0 && t0 >= g {
		select {
		case kw.recovered <- time.Now():
		default: // another write was first
		}
	}
}
