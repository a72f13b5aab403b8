package coord

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// forwardedKey marks a request a member forwarded; it is never forwarded
// again, so two members that disagree on the leader cannot bounce it.
const forwardedKey = "coord-forwarded"

// forwarder keeps one client connection to the current leader, for the
// requests a follower hands to it: writes, linearizable reads, lease calls.
type forwarder struct {
	s *Server

	mu      sync.Mutex // guards addr, conn, retired and streams
	addr    string
	conn    *grpc.ClientConn
	retired []retiredConn
	streams map[*grpc.ClientConn]*fwdStream // see forward_stream.go
}

// retiredConn is a connection to a former leader. Requests and streams may
// still be using it, so it is closed only after retireAfter (or on close).
type retiredConn struct {
	conn  *grpc.ClientConn
	since time.Time
}

const retireAfter = time.Minute

func newForwarder(s *Server) *forwarder { return &forwarder{s: s} }

// to returns a connection to the leader and a context marking the request
// as forwarded, or ok=false when this member should serve the request: it
// leads, the request was already forwarded once, or no leader is known (the
// local path then answers "no leader").
//
// While no leader is known, or the known one cannot be reached, it waits
// for one (bounded by the request's deadline and the apply timeout),
// as etcd holds a proposal during an election: a client sees a failover as
// a pause, not as errors.
func (f *forwarder) to(ctx context.Context) (context.Context, *grpc.ClientConn, bool) {
	fctx, conn, _, ok := f.toAvoiding(ctx, "", time.Time{})
	return fctx, conn, ok
}

// toAvoiding is to for a request that already failed to reach the leader
// named avoid: that leader is used again only once its connection is
// ready, and the wait ends at deadline (zero: the apply timeout from now).
// It also returns the leader chosen.
func (f *forwarder) toAvoiding(ctx context.Context, avoid raft.ServerID, deadline time.Time) (context.Context, *grpc.ClientConn, raft.ServerID, bool) {
	s := f.s
	// The leader's requests take the first return: no metadata copy and no
	// timer (they were a tenth of a put's allocations).
	if s.servesLocally(ctx) {
		return ctx, nil, "", false
	}
	var wait *time.Timer
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	unreachable := avoid // a leader whose connection failed
	for {
		if s.node.raft.State() == raft.Leader {
			return ctx, nil, "", false
		}
		if _, id := s.node.raft.LeaderWithID(); id != "" {
			conn, ok := f.leaderConn(id)
			if !ok {
				return ctx, nil, "", false
			}
			st := conn.GetState()
			if st == connectivity.Ready || id != unreachable && st != connectivity.TransientFailure {
				return metadata.AppendToOutgoingContext(ctx, forwardedKey, s.cfg.Name), conn, id, true
			}
			// Known to fail: ask for a new attempt and use it
			// once it is ready, unless another leader comes first.
			unreachable = id
			conn.Connect()
		}
		if wait == nil {
			if deadline.IsZero() {
				deadline = time.Now().Add(s.cfg.ApplyTimeout)
			}
			wait = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-ctx.Done():
			return ctx, nil, "", false
		case <-s.stopc:
			return ctx, nil, "", false
		case <-wait.C:
			return ctx, nil, "", false // the local path answers "no leader"
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// leaderConn returns the connection to the leader named id.
func (f *forwarder) leaderConn(id raft.ServerID) (*grpc.ClientConn, bool) {
	addr, ok := f.s.members.clientAddr(string(id))
	if !ok {
		return nil, false
	}
	conn, err := f.connect(addr)
	return conn, err == nil
}

func (f *forwarder) connect(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.addr == addr {
		return f.conn, nil
	}
	now := time.Now()
	kept := f.retired[:0]
	for _, r := range f.retired {
		if now.Sub(r.since) > retireAfter {
			r.conn.Close()
		} else {
			kept = append(kept, r)
		}
	}
	f.retired = kept
	if f.conn != nil {
		f.retired = append(f.retired, retiredConn{f.conn, now})
		f.conn = nil
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(f.s.cfg.MaxRequestBytes+grpcOverheadBytes), grpc.MaxCallRecvMsgSize(1<<31-1)))
	if err != nil {
		return nil, err
	}
	f.addr, f.conn = addr, conn
	return conn, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	for _, r := range f.retired {
		r.conn.Close()
	}
	f.retired = nil
	for _, fs := range f.streams {
		fs.cancel()
	}
	f.streams = nil
}

// proxyKeepAlive relays a client's keep-alive stream to the leader until
// either side ends it; the client's library reconnects if leadership moves.
func (f *forwarder) proxyKeepAlive(ctx context.Context, conn *grpc.ClientConn, client pb.Lease_LeaseKeepAliveServer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
	if err != nil {
		return toGRPC(err)
	}
	go func() {
		for {
			req, err := client.Recv()
			if err != nil {
				up.CloseSend()
				return
			}
			if err := up.Send(req); err != nil {
				return
			}
		}
	}()
	// The receiving goroutine is blocked in client.Recv until the client
	// sends or this handler returns; it is not waited for here, because
	// returning is what ends it.
	for {
		resp, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := client.Send(resp); err != nil {
			return err
		}
	}
}
