package coord

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A client that asks with clientv3.WithRequireLeader is refused while this
// member knows no leader, and its watch streams are canceled once the
// member has had no leader for noLeaderChecks election timeouts in a row,
// as etcd does: a watcher on a partitioned member learns it may be missing
// events instead of waiting on a stream that will stay silent.
const noLeaderChecks = 3

// requiresLeader reports whether the request carries etcd's require-leader
// metadata.
func requiresLeader(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

func (s *Server) hasLeader() bool {
	addr, _ := s.node.raft.LeaderWithID()
	return addr != ""
}

func (s *Server) requireLeaderUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if requiresLeader(ctx) && !s.hasLeader() {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	return h(ctx, req)
}

func (s *Server) requireLeaderStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if requiresLeader(ss.Context()) && !s.hasLeader() {
		return rpctypes.ErrGRPCNoLeader
	}
	return h(srv, ss)
}

// leaderLost returns a channel that is closed once this member has had no
// leader for noLeaderChecks checks in a row, one check per election
// timeout, and a function to stop checking. For streams that do not
// require a leader it returns a nil channel (never ready).
func (s *Server) leaderLost(ctx context.Context) (<-chan struct{}, func()) {
	if !requiresLeader(ctx) {
		return nil, func() {}
	}
	lost := make(chan struct{})
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.cfg.ElectionTimeout)
		defer t.Stop()
		missing := 0
		for {
			select {
			case <-done:
				return
			case <-s.stopc:
				return
			case <-t.C:
			}
			if s.hasLeader() {
				missing = 0
				continue
			}
			if missing++; missing >= noLeaderChecks {
				close(lost)
				return
			}
		}
	}()
	return lost, func() { close(done) }
}
