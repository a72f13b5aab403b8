package harness

import (
	"context"
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// leaseTTL is the TTL of the leases lease-64 keeps alive; long enough
// that none expires during a run.
const leaseTTL = 60

// runLease grants one lease per worker and opens one keep-alive stream per
// worker; each worker then renews its lease on its stream, one request and
// its answer at a time, as etcd's own benchmark tool does (lease-keepalive)
// and as a client's KeepAlive does, only back to back.
func runLease(ctx context.Context, env *Env) (*Result, error) {
	p := env.Params
	pool, err := newClientPool(env.Endpoints(), min(p.Conns, p.LeaseClients))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	leases := make([]int64, p.LeaseClients)
	for w := range leases {
		gctx, gcancel := context.WithTimeout(ctx, p.RequestTimeout)
		resp, err := pool.of(w).Grant(gctx, leaseTTL)
		gcancel()
		if err != nil {
			return nil, fmt.Errorf("harness: grant lease: %w", err)
		}
		leases[w] = int64(resp.ID)
	}
	// The streams live for the run plus one request timeout: a stream that
	// hangs ends then, and so does its worker.
	sctx, cancel := context.WithTimeout(ctx, p.Duration+2*p.RequestTimeout)
	defer cancel()
	streams := make([]pb.Lease_LeaseKeepAliveClient, p.LeaseClients)
	for w := range streams {
		s, err := pb.NewLeaseClient(pool.of(w).ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			return nil, fmt.Errorf("harness: open keep-alive stream: %w", err)
		}
		streams[w] = s
	}
	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	l := loop{workers: p.LeaseClients, duration: p.Duration, maxOps: p.MaxOps, timeout: p.RequestTimeout}
	st := l.run(ctx, func(_ context.Context, w int, _ *rand.Rand) error {
		if err := streams[w].Send(&pb.LeaseKeepAliveRequest{ID: leases[w]}); err != nil {
			return err
		}
		resp, err := streams[w].Recv()
		if err != nil {
			return err
		}
		if resp.TTL <= 0 {
			return fmt.Errorf("harness: lease %x not renewed (TTL %d)", leases[w], resp.TTL)
		}
		return nil
	})
	for _, s := range streams {
		s.CloseSend()
	}
	return st.result(), nil
}
