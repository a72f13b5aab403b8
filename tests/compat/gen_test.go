package compat

import (
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// gen makes random KV requests over a small key space, so that keys collide,
// ranges overlap and every option meets every other.
type gen struct{ r *rand.Rand }

func (g *gen) key() string { return fmt.Sprintf("%c/%d", 'a'+g.r.IntN(3), g.r.IntN(6)) }

func (g *gen) end(key string) []byte {
	switch g.r.IntN(6) {
	case 0:
		return []byte{0}
	case 1:
		return []byte{key[0], '/' + 1} // the prefix key[0]+"/"
	case 2:
		return []byte(g.key())
	default:
		return nil
	}
}

func (g *gen) lease() int64 {
	if g.r.IntN(3) == 0 {
		return int64(1 + g.r.IntN(5))
	}
	return 0
}

func (g *gen) put() *pb.PutRequest {
	r := &pb.PutRequest{Key: []byte(g.key()), Value: []byte(fmt.Sprintf("v%d", g.r.IntN(5))), Lease: g.lease(), PrevKv: g.r.IntN(2) == 0}
	switch g.r.IntN(10) {
	case 0:
		r.IgnoreValue, r.Value = true, nil
	case 1:
		r.IgnoreLease, r.Lease = true, 0
	case 2:
		r.IgnoreValue = true // with a value: an error
	case 3:
		r.Key = nil // an error
	}
	return r
}

func (g *gen) del() *pb.DeleteRangeRequest {
	k := g.key()
	return &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: g.end(k), PrevKv: g.r.IntN(2) == 0}
}

func (g *gen) rangeReq(rev, compacted int64) *pb.RangeRequest {
	k := g.key()
	r := &pb.RangeRequest{Key: []byte(k), RangeEnd: g.end(k)}
	if g.r.IntN(4) == 0 {
		r.Key, r.RangeEnd = []byte{0}, []byte{0}
	}
	if g.r.IntN(2) == 0 {
		lo := max(compacted-2, 0)
		r.Revision = lo + g.r.Int64N(rev-lo+3)
		if g.r.IntN(10) == 0 {
			r.Revision = -r.Revision
		}
	}
	if g.r.IntN(3) == 0 {
		r.Limit = int64(g.r.IntN(5)) - 1
	}
	if g.r.IntN(3) == 0 {
		r.SortOrder = pb.RangeRequest_SortOrder(g.r.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.r.IntN(5))
	}
	r.KeysOnly = g.r.IntN(6) == 0
	r.CountOnly = g.r.IntN(8) == 0
	if g.r.IntN(4) == 0 {
		r.MinModRevision = g.r.Int64N(rev + 1)
		r.MaxCreateRevision = g.r.Int64N(rev + 1)
	}
	if g.r.IntN(4) == 0 {
		r.MaxModRevision = g.r.Int64N(rev + 1)
		r.MinCreateRevision = g.r.Int64N(rev + 1)
	}
	return r
}

func (g *gen) compare(rev int64) *pb.Compare {
	k := g.key()
	c := &pb.Compare{Key: []byte(k), Result: pb.Compare_CompareResult(g.r.IntN(4)), Target: pb.Compare_CompareTarget(g.r.IntN(5))}
	if g.r.IntN(4) == 0 {
		c.RangeEnd = g.end(k)
	}
	n := g.r.Int64N(rev + 1)
	switch c.Target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(fmt.Sprintf("v%d", g.r.IntN(5)))}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: n % 4}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: n}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: n}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: g.lease()}
	}
	return c
}

func (g *gen) ops(rev, compacted int64, depth int) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for range g.r.IntN(4) {
		switch n := g.r.IntN(10); {
		case n < 4:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: g.put()}})
		case n < 6:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.del()}})
		case n < 9 || depth == 0:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq(rev, compacted)}})
		default:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txn(rev, compacted, depth-1)}})
		}
	}
	return ops
}

func (g *gen) txn(rev, compacted int64, depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{Success: g.ops(rev, compacted, depth), Failure: g.ops(rev, compacted, depth)}
	for range g.r.IntN(3) {
		r.Compare = append(r.Compare, g.compare(rev))
	}
	if hasFromKeyDelete(r) {
		defuse(r)
	}
	return r
}

// etcd v3.7.3 crashes applying a txn whose put with ignore_value or
// ignore_lease follows a from-key delete of the same key (kvstore rejects
// it; see kvstore's TestTxnIgnoreValueAfterFromKeyDelete). Txns with a
// from-key delete therefore carry no such puts here.
func hasFromKeyDelete(r *pb.TxnRequest) bool {
	for _, op := range append(append([]*pb.RequestOp{}, r.Success...), r.Failure...) {
		if d := op.GetRequestDeleteRange(); d != nil && len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0 {
			return true
		}
		if t := op.GetRequestTxn(); t != nil && hasFromKeyDelete(t) {
			return true
		}
	}
	return false
}

func defuse(r *pb.TxnRequest) {
	for _, op := range append(append([]*pb.RequestOp{}, r.Success...), r.Failure...) {
		if p := op.GetRequestPut(); p != nil {
			p.IgnoreValue, p.IgnoreLease = false, false
		}
		if t := op.GetRequestTxn(); t != nil {
			defuse(t)
		}
	}
}
