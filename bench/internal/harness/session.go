package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// sessionTTL is the TTL of the sessions of the coordination workloads, in
// seconds.
const sessionTTL = 10

// openSession grants a lease within timeout and returns a session on it,
// kept alive until ctx ends or the session is closed. (NewSession would
// grant with no timeout of its own.)
func openSession(ctx context.Context, cli *clientv3.Client, timeout time.Duration) (*concurrency.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	resp, err := cli.Grant(gctx, sessionTTL)
	cancel()
	if err != nil {
		return nil, err
	}
	return concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(sessionTTL), concurrency.WithContext(ctx))
}

// openSessions opens one session per worker, worker w on pool.of(w), all
// at once.
func openSessions(ctx context.Context, pool clientPool, n int, timeout time.Duration) ([]*concurrency.Session, error) {
	ss := make([]*concurrency.Session, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() { ss[w], errs[w] = openSession(ctx, pool.of(w), timeout) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeSessions(slices.DeleteFunc(ss, func(s *concurrency.Session) bool { return s == nil }))
		return nil, fmt.Errorf("harness: sessions: %w", err)
	}
	return ss, nil
}

// closeSessions closes the sessions, revoking their leases, all at once.
func closeSessions(ss []*concurrency.Session) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { s.Close() })
	}
	wg.Wait()
}
