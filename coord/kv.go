package coord

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kvServer is etcd's KV service.
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := kvstore.ValidateRange(r); err != nil {
		return nil, toGRPC(err)
	}
	if r.Serializable {
		if err := k.s.waitAcked(ctx); err != nil {
			return nil, toGRPC(err)
		}
	} else if err := k.s.linearize(ctx); err != nil {
		return nil, toGRPC(err)
	}
	resp, err := k.s.store.Range(r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := kvstore.ValidatePut(r); err != nil {
		return nil, toGRPC(err)
	}
	if resp, ok, err := viaLeader(ctx, k.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.PutResponse, error) {
		return forwardKV(ctx, k.s, c, fwdPut, r, new(pb.PutResponse), pb.NewKVClient(c).Put)
	}); ok {
		return forwarded(ctx, k.s, 0, resp, err)
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.PutResponse)
	k.s.fillHeader(out.Header)
	return out, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := kvstore.ValidateDeleteRange(r); err != nil {
		return nil, toGRPC(err)
	}
	if resp, ok, err := viaLeader(ctx, k.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.DeleteRangeResponse, error) {
		return forwardKV(ctx, k.s, c, fwdDeleteRange, r, new(pb.DeleteRangeResponse), pb.NewKVClient(c).DeleteRange)
	}); ok {
		return forwarded(ctx, k.s, 0, resp, err)
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.DeleteRangeResponse)
	k.s.fillHeader(out.Header)
	return out, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := kvstore.ValidateTxn(r, k.s.cfg.MaxTxnOps); err != nil {
		return nil, toGRPC(err)
	}
	if readOnly(r) {
		// As etcd: a txn of reads only is a read, served without the log.
		if err := k.s.linearize(ctx); err != nil {
			return nil, toGRPC(err)
		}
		resp, err := k.s.store.Txn(r)
		if err != nil {
			return nil, toGRPC(err)
		}
		k.s.fillHeader(resp.Header)
		return resp, nil
	}
	if resp, ok, err := k.readTxn(ctx, r); ok {
		return resp, err
	}
	if resp, ok, err := viaLeader(ctx, k.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.TxnResponse, error) {
		return forwardKV(ctx, k.s, c, fwdTxn, r, new(pb.TxnResponse), pb.NewKVClient(c).Txn)
	}); ok {
		return forwarded(ctx, k.s, 0, resp, err)
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.TxnResponse)
	k.s.fillHeader(out.Header)
	return out, nil
}

// readTxn answers, as a linearizable read, a txn whose compares choose a
// path without writes: such a txn changes nothing, and its answer is what
// the log would have given at the moment the read was confirmed. An
// optimistic compare-and-put that lost its race, a lock or an election
// campaign that finds the key taken, is such a txn; through the log each
// cost a raft round, an fsync on a quorum and an apply.
//
// It reports false, having answered nothing, when the txn must go through
// the log: its path writes on the state this member has applied (a guess,
// which spares a txn that will likely write a read round first), or
// writes once the read is confirmed, or the read cannot be confirmed (the
// log decides then, as for any write), or the store is past its quota,
// where the FSM refuses a txn with any put.
//
// Only the leader answers so. Its state is the newest, so its guess is
// nearly always right. A follower's lags what its clients saw through the
// other members: under semaphore-100 on 3 nodes, 95% of the followers'
// guesses were wrong, each a follower read round (27 ms on average) before
// the write, and the cycles fell by 40%. A follower forwards the txn
// instead, and the leader answers it as a read when it can.
func (k *kvServer) readTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, bool, error) {
	if k.s.node.raft.State() != raft.Leader {
		return nil, false, nil
	}
	if _, isRead, _ := k.s.store.ReadTxn(r); !isRead {
		return nil, false, nil
	}
	if err := k.s.linearize(ctx); err != nil {
		// A leader that cannot serve reads yet (elected, its first
		// barrier not applied) or any more (deposed) must not fail a
		// txn that the log would take: it goes there, or to the new
		// leader, as if it had not been guessed a read.
		return nil, false, nil
	}
	if k.s.fsm.overQuota() && txnWrites(r) {
		return nil, false, nil
	}
	resp, isRead, err := k.s.store.ReadTxn(r)
	switch {
	case !isRead:
		return nil, false, nil
	case err != nil:
		return nil, true, toGRPC(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, true, nil
}

// readOnly reports whether every op of both branches, nested ones included,
// is a range.
func readOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestRange() != nil:
			case op.GetRequestTxn() != nil:
				if !readOnly(op.GetRequestTxn()) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if resp, ok, err := viaLeader(ctx, k.s, func(ctx context.Context, c *grpc.ClientConn) (*pb.CompactionResponse, error) {
		return pb.NewKVClient(c).Compact(ctx, r)
	}); ok {
		return forwarded(ctx, k.s, r.Revision, resp, err)
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, toGRPC(err)
	}
	out := resp.(*pb.CompactionResponse)
	k.s.fillHeader(out.Header)
	return out, nil
}

// forwarded finishes a write the leader applied for this follower. It
// answers at once; the follower learns that the entry is committed only
// with the leader's next append (for a write that comes alone, the
// leader's announcement, see announceCommits), and waiting for that would
// add a round trip and an fsync to every forwarded write. Instead the
// follower notes the revision
// (and compaction) it acknowledged, and reads it serves from its own store
// wait until the store reaches it (waitAcked), so a client still reads its
// own writes on the member it talks to, as with etcd.
func forwarded[R interface{ GetHeader() *pb.ResponseHeader }](ctx context.Context, s *Server, compacted int64, resp R, err error) (R, error) {
	if err != nil {
		return resp, err
	}
	raiseTo(&s.ackedRev, resp.GetHeader().GetRevision())
	raiseTo(&s.ackedCompact, compacted)
	return resp, nil
}

// raiseTo sets v to n if n is larger.
func raiseTo(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// waitAcked waits until this member's store has applied every write it
// acknowledged for the leader (see forwarded).
func (s *Server) waitAcked(ctx context.Context) error {
	rev, compacted := s.ackedRev.Load(), s.ackedCompact.Load()
	if s.store.Rev() >= rev && (compacted <= 0 || s.store.CompactRev() >= compacted) {
		return nil
	}
	return s.waitLocal(ctx, rev, compacted)
}

// viaLeader sends a request to the leader when this member does not lead;
// ok=false means serve it here. A request whose connection to the leader
// could not even be made (the leader just died and the dial was refused)
// was never sent, so it goes again once a leader is reachable: a new one,
// or the same one back. It keeps trying for the apply timeout, as a
// proposal would wait out an election.
func viaLeader[R any](ctx context.Context, s *Server, call func(context.Context, *grpc.ClientConn) (R, error)) (resp R, ok bool, err error) {
	var failed raft.ServerID
	var deadline time.Time
	for {
		fctx, conn, id, fwd := s.forward.toAvoiding(ctx, failed, deadline)
		if !fwd {
			return resp, false, nil // this member leads now, or none does
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.cfg.ApplyTimeout)
		}
		resp, err = call(fctx, conn)
		if err == nil || !notSent(err) || ctx.Err() != nil {
			return resp, true, leaderFailed(err)
		}
		failed = id
	}
}

// notSent reports whether a forwarded request failed before it left: its
// connection could not be made.
func notSent(err error) bool {
	if err == errStreamNotSent {
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), "while dialing")
}

// leaderFailed turns the transport error of a request forwarded to a leader
// that went away (a reset connection, a refused dial) into etcd's error for
// that case: the write may or may not have been committed. Errors the
// leader answered with pass through.
func leaderFailed(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != codes.Unavailable || strings.HasPrefix(st.Message(), "etcdserver:") {
		return err
	}
	return rpctypes.ErrGRPCTimeoutDueToLeaderFail
}
