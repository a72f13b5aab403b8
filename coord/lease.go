package coord

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// lessor keeps the deadline of every lease. Only the leader's deadlines
// count: keep-alives renew them in memory, and when one passes the leader
// confirms it still leads and proposes the revoke through the log. A new
// leader first gives every lease a fresh full TTL, so a lease never expires
// because leadership moved.
type lessor struct {
	s   *Server
	now func() time.Time

	mu      sync.Mutex // guards the fields below
	leases  map[int64]*leaseState
	leading bool
}

type leaseState struct {
	ttl      int64
	deadline time.Time
}

func newLessor(s *Server) *lessor {
	return &lessor{s: s, now: time.Now, leases: make(map[int64]*leaseState)}
}

func (l *lessor) ttlDuration(ttl int64) time.Duration { return time.Duration(ttl) * time.Second }

// granted, revoked and restored are called by the FSM in log order.
func (l *lessor) granted(id, ttl int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[id] = &leaseState{ttl: ttl, deadline: l.now().Add(l.ttlDuration(ttl))}
}

func (l *lessor) revoked(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.leases, id)
}

func (l *lessor) restored(leases []kvstore.Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.leases)
	now := l.now()
	for _, ls := range leases {
		l.leases[ls.ID] = &leaseState{ttl: ls.TTL, deadline: now.Add(l.ttlDuration(ls.TTL))}
	}
}

// promote starts expiry on a new leader, after a fresh full TTL for all.
func (l *lessor) promote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, ls := range l.leases {
		ls.deadline = now.Add(l.ttlDuration(ls.ttl))
	}
	l.leading = true
}

func (l *lessor) demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = false
}

// renew extends a lease by its TTL. It returns the TTL, or 0 if the lease
// does not exist or has expired (etcd's answer to a keep-alive of an unknown
// lease).
func (l *lessor) renew(id int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return 0, raft.ErrNotLeader
	}
	ls := l.leases[id]
	if ls == nil {
		return 0, nil
	}
	// A lease past its deadline is being revoked (or will be on the next
	// tick). Extending it now would let a client believe it holds a lease
	// whose keys are about to vanish, so it counts as gone already.
	now := l.now()
	if now.After(ls.deadline) {
		return 0, nil
	}
	ls.deadline = now.Add(l.ttlDuration(ls.ttl))
	return ls.ttl, nil
}

// remaining returns the seconds left of a lease and its granted TTL.
func (l *lessor) remaining(id int64) (left, granted int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[id]
	if ls == nil {
		return -1, 0, false
	}
	return int64(ls.deadline.Sub(l.now()).Seconds()), ls.ttl, true
}

// expired returns the leases whose deadline passed, if this member leads.
func (l *lessor) expired() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return nil
	}
	now := l.now()
	var ids []int64
	for id, ls := range l.leases {
		if now.After(ls.deadline) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// run revokes expired leases while this member leads. A revoke that fails
// stays expired and is tried again on the next tick.
func (l *lessor) run() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.s.stopc:
			return
		case <-t.C:
		}
		ids := l.expired()
		if len(ids) == 0 {
			continue
		}
		// A leader cut off from the others must not expire anything.
		if err := l.s.node.raft.VerifyLeader().Error(); err != nil {
			continue
		}
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), l.s.cfg.ApplyTimeout)
			_, err := l.s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
			cancel()
			if err != nil && !errors.Is(err, kvstore.ErrLeaseNotFound) {
				l.s.log.Warn("lease revoke failed; will retry", "lease", id, "err", err)
				break
			}
			if err == nil {
				l.s.metrics.leaseExpiry.Inc()
			}
		}
	}
}

// leaseServer is etcd's Lease service.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (ls *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > kvstore.MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	if resp, ok, err := viaLeader(ctx, ls.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.LeaseGrantResponse, error) {
		return pb.NewLeaseClient(c).LeaseGrant(ctx, r)
	}); ok {
		return resp, err
	}
	req := &pb.LeaseGrantRequest{ID: r.ID, TTL: max(r.TTL, ls.s.cfg.minLeaseTTL())}
	resp, err := ls.s.propose(ctx, &pb.InternalRaftRequest{LeaseGrant: req})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.LeaseGrantResponse)
	ls.s.fillHeader(out.Header)
	return out, nil
}

func (ls *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if resp, ok, err := viaLeader(ctx, ls.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.LeaseRevokeResponse, error) {
		return pb.NewLeaseClient(c).LeaseRevoke(ctx, r)
	}); ok {
		return resp, err
	}
	resp, err := ls.s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: r})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.LeaseRevokeResponse)
	ls.s.fillHeader(out.Header)
	return out, nil
}

func (ls *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	if fctx, conn, ok := ls.s.forward.to(stream.Context()); ok {
		return ls.s.forward.proxyKeepAlive(fctx, conn, stream)
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		// A leader that cannot confirm it still leads must not extend a
		// lease: a newer leader may expire it on its own clock (etcd
		// 15247). A recent confirmation is enough (leader_lease.go).
		if err := ls.s.reads.waitRenew(stream.Context()); err != nil {
			return toGRPC(err)
		}
		ttl, err := ls.s.lessor.renew(req.ID)
		if err != nil {
			return toGRPC(err)
		}
		resp := &pb.LeaseKeepAliveResponse{Header: ls.s.header(ls.s.store.Rev()), ID: req.ID, TTL: ttl}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (ls *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if fctx, conn, ok := ls.s.forward.to(ctx); ok {
		return pb.NewLeaseClient(conn).LeaseTimeToLive(fctx, r)
	}
	if err := ls.s.reads.wait(ctx); err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: ls.s.header(ls.s.store.Rev()), ID: r.ID, TTL: -1}
	left, granted, ok := ls.s.lessor.remaining(r.ID)
	if !ok {
		return resp, nil
	}
	resp.TTL, resp.GrantedTTL = left, granted
	if r.Keys {
		l, err := ls.s.store.LeaseKeys(r.ID)
		if err == nil {
			resp.Keys = l.Keys
		}
	}
	return resp, nil
}

func (ls *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	if fctx, conn, ok := ls.s.forward.to(ctx); ok {
		return pb.NewLeaseClient(conn).LeaseLeases(fctx, r)
	}
	if err := ls.s.reads.wait(ctx); err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.LeaseLeasesResponse{Header: ls.s.header(ls.s.store.Rev())}
	for _, l := range ls.s.store.Leases() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
	}
	return resp, nil
}
