package kvstore

import (
	"bytes"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Range reads keys as etcd's KV.Range does. The header carries the current
// revision, also for a read at a past revision.
func (s *Store) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := ValidateRange(r); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rangeLocked(r, s.rev)
}

// rangeLocked reads with curRev as the current revision: s.rev, or the
// revision a txn is writing when the txn has already written.
func (s *Store) rangeLocked(r *pb.RangeRequest, curRev int64) (*pb.RangeResponse, error) {
	rev := r.Revision
	if rev > curRev {
		return nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = curRev
	}
	if rev < s.compactRev {
		return nil, ErrCompacted
	}

	// As etcd: with an order other than by key ascending, or with a
	// revision filter, everything is read and then pruned, sorted and cut;
	// otherwise one key more than the limit is read to learn whether there
	// are more. (So order NONE with a target other than KEY sorts only the
	// first limit+1 keys, as etcd does.) Count is the number of keys in the
	// range at rev, before any filter.
	limit := max(r.Limit, 0) // a negative limit means none, as in etcd
	defaultOrder := r.SortOrder == pb.RangeRequest_NONE ||
		(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
	if !defaultOrder || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		limit = 0
	}
	if limit > 0 {
		limit++
	}

	var kvs []*mvccpb.KeyValue
	count := int64(0)
	visit := func(rec *record) {
		count++
		if !r.CountOnly && (limit == 0 || int64(len(kvs)) < limit) {
			kvs = append(kvs, toKV(rec, false))
		}
	}
	if len(r.RangeEnd) == 0 && rev == curRev {
		// A point read of the current state: no walk of the tree.
		if rec := s.liveLocked(r.Key); rec != nil {
			kvs = make([]*mvccpb.KeyValue, 0, 1)
			visit(rec)
		}
	} else {
		ascend(s.tree, r.Key, r.RangeEnd, func(ki *keyIndex) bool {
			if rec := ki.at(rev); rec != nil {
				visit(rec)
			}
			return true
		})
	}

	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: curRev}, Count: count}
	if r.CountOnly {
		return resp, nil
	}
	kvs = pruneKVs(kvs, r)
	sortKVs(kvs, r)
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		// etcd answers keys_only from its index, which has no lease, unless
		// it must read values to sort by them.
		fromIndex := r.SortTarget != pb.RangeRequest_VALUE
		for _, kv := range kvs {
			kv.Value = nil
			if fromIndex {
				kv.Lease = 0
			}
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func pruneKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) []*mvccpb.KeyValue {
	if r.MinModRevision == 0 && r.MaxModRevision == 0 && r.MinCreateRevision == 0 && r.MaxCreateRevision == 0 {
		return kvs
	}
	out := kvs[:0]
	for _, kv := range kvs {
		switch {
		case r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision:
		case r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision:
		case r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision:
		case r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision:
		default:
			out = append(out, kv)
		}
	}
	return out
}

// sortKVs sorts as etcd does. Keys arrive in ascending key order, so an
// ascending sort by key is skipped, and a target other than KEY with order
// NONE sorts ascending. sort.Sort is used on purpose: it orders equal
// elements exactly as etcd's server does.
func sortKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	} else if r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE
	}
	if order == pb.RangeRequest_NONE {
		return
	}
	var s sort.Interface
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		s = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }}
	case pb.RangeRequest_VERSION:
		s = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }}
	case pb.RangeRequest_CREATE:
		s = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }}
	case pb.RangeRequest_MOD:
		s = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }}
	case pb.RangeRequest_VALUE:
		s = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }}
	default:
		return // rejected by ValidateRange
	}
	if order == pb.RangeRequest_DESCEND {
		s = sort.Reverse(s)
	}
	sort.Sort(s)
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (k kvSorter) Len() int           { return len(k.kvs) }
func (k kvSorter) Less(i, j int) bool { return k.less(k.kvs[i], k.kvs[j]) }
func (k kvSorter) Swap(i, j int)      { k.kvs[i], k.kvs[j] = k.kvs[j], k.kvs[i] }
