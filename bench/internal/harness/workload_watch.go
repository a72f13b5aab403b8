package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const watchPrefix = "bench/watch/"

// stampSize is the size of the send time at the head of each watched value.
const stampSize = 8

// watcher is one watch of watch-1000 and what it saw. Only its own
// goroutine writes it, until that goroutine ends.
type watcher struct {
	lat    []time.Duration // put-to-event latencies
	events int64
	err    error // first error of the watch while it was wanted
}

// runWatch opens Watchers watches of one prefix over Conns connections,
// then puts WatchRate keys per second under it for Duration, each value
// starting with its send time. It measures the events delivered per
// second and the latency from put to event, and counts events missing
// once the watches have caught up.
func runWatch(ctx context.Context, env *Env) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.Watchers))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	putter, err := newClient(env.Endpoints())
	if err != nil {
		return nil, err
	}
	defer putter.Close()

	wctx, cancelWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancelWatch()
		wg.Wait()
	}()
	ws := make([]watcher, p.Watchers)
	var delivered atomic.Int64
	created := make(chan error, p.Watchers)
	for i := range ws {
		wch := pool.of(i).Watch(wctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		wg.Go(func() { ws[i].follow(wctx, wch, created, &delivered) })
	}
	if err := waitCreated(ctx, created, p.Watchers, 4*p.RequestTimeout); err != nil {
		return nil, err
	}

	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	start := time.Now()
	puts, putErrs, firstErr := putStamped(ctx, putter, p)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	putElapsed := time.Since(start)
	// Let the watches catch up with the last puts.
	want := puts * int64(p.Watchers)
	drain, cancelDrain := context.WithTimeout(ctx, p.RequestTimeout)
	for delivered.Load() < want && drain.Err() == nil {
		pause(drain, time.Millisecond)
	}
	cancelDrain()
	elapsed := time.Since(start)
	cancelWatch()
	wg.Wait()

	var (
		events, watchErrs int64
		lat               []time.Duration
	)
	for _, w := range ws {
		events += w.events
		lat = append(lat, w.lat...)
		if w.err != nil {
			watchErrs++
			if firstErr == nil {
				firstErr = w.err
			}
		}
	}
	slices.Sort(lat)
	r := stats{ops: events, errs: putErrs + watchErrs, firstErr: firstErr, elapsed: elapsed, lat: lat}.result()
	r.Metrics[MetricPuts] = float64(puts)
	r.Metrics[MetricPutRate] = float64(puts) / putElapsed.Seconds()
	r.Metrics[MetricEventsMissing] = float64(max(0, want-events))
	return r, nil
}

// waitCreated waits until n watches said they were created.
func waitCreated(ctx context.Context, created <-chan error, n int, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for i := range n {
		select {
		case err := <-created:
			if err != nil {
				return fmt.Errorf("harness: watch %d: %w", i, err)
			}
		case <-t.C:
			return fmt.Errorf("harness: only %d of %d watches created in %v", i, n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// follow reads the watch until it closes: it reports on created when the
// watch is created (or fails first), and records every event's latency.
func (w *watcher) follow(ctx context.Context, wch clientv3.WatchChan, created chan<- error, delivered *atomic.Int64) {
	notified := false
	notify := func(err error) {
		if !notified {
			notified = true
			created <- err // buffered for every watcher
		}
	}
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil && w.err == nil {
				w.err = err
			}
			notify(err)
			continue
		}
		if resp.Created {
			notify(nil)
		}
		now := time.Now()
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT || len(ev.Kv.Value) < stampSize {
				continue
			}
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(ev.Kv.Value)))
			w.lat = append(w.lat, now.Sub(sent))
			w.events++
		}
		delivered.Add(int64(len(resp.Events)))
	}
	notify(errWatchClosed)
}

// putStamped puts WatchRate keys a second for Duration (at most MaxOps),
// each value led by its send time, and returns how many puts succeeded
// and failed.
func putStamped(ctx context.Context, cli *clientv3.Client, p Params) (puts, errs int64, firstErr error) {
	interval := time.Second / time.Duration(p.WatchRate)
	n := min(int64(p.Duration/interval), max(p.MaxOps, 1))
	pad := newValues(p.ValueSize, 64)
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range n {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return puts, errs, firstErr
		}
		v := []byte(pad.pick(rng))
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		pctx, cancel := context.WithTimeout(ctx, p.RequestTimeout)
		_, err := cli.Put(pctx, keyName(watchPrefix, int(i)), string(v))
		cancel()
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		puts++
	}
	return puts, errs, firstErr
}
