package coord

import (
	"context"

	"github.com/coordhq/coord/kvstore"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
	if !r.Serializable {
		if err := k.s.linearize(ctx); err != nil {
			return nil, toGRPC(err)
		}
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
	if fctx, conn, ok := k.s.forward.to(ctx); ok {
		resp, err := pb.NewKVClient(conn).Put(fctx, r)
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
	if fctx, conn, ok := k.s.forward.to(ctx); ok {
		resp, err := pb.NewKVClient(conn).DeleteRange(fctx, r)
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
	if fctx, conn, ok := k.s.forward.to(ctx); ok {
		resp, err := pb.NewKVClient(conn).Txn(fctx, r)
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
	if fctx, conn, ok := k.s.forward.to(ctx); ok {
		resp, err := pb.NewKVClient(conn).Compact(fctx, r)
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

// forwarded finishes a write the leader applied for this follower: it
// waits until this member's store has applied it too (its revision, and
// compacted if given), so that the client reads its own write here, as
// with etcd, where the member a client talks to answers once it applied
// the write itself.
func forwarded[R interface{ GetHeader() *pb.ResponseHeader }](ctx context.Context, s *Server, compacted int64, resp R, err error) (R, error) {
	if err != nil {
		return resp, err
	}
	if werr := s.waitLocal(ctx, resp.GetHeader().GetRevision(), compacted); werr != nil {
		return resp, toGRPC(werr)
	}
	return resp, nil
}
