package kvstore

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// change is one record a write made, with the prev_kv its watch event
// carries (nil for none).
type change struct {
	rec  *record
	prev *record
}

// eventPrev returns the prev_kv of the watch event for rec, as etcd defines
// it: the key as it was at the revision before rec, and nothing for a put
// that creates the key or when that revision is compacted. (A txn may write
// one key several times in a revision through from-key deletes; etcd still
// reports the state before the revision.)
func (ki *keyIndex) eventPrev(rec *record, compactRev int64) *record {
	if (!rec.tombstone() && rec.version == 1) || rec.mod-1 < compactRev {
		return nil
	}
	return ki.at(rec.mod - 1)
}

// writer applies the ops of one write transaction at revision rev. Reads
// through it see its own earlier writes. Callers hold s.mu exclusively and
// call finish exactly once.
type writer struct {
	s       *Store
	rev     int64
	changes []change
}

func (s *Store) newWriter() *writer { return &writer{s: s, rev: s.rev + 1} }

// curRev is the revision a read inside this transaction sees as current.
func (w *writer) curRev() int64 {
	if len(w.changes) > 0 {
		return w.rev
	}
	return w.s.rev
}

// finish commits the transaction: the revision moves only if something
// changed, and watchers hear of the changes.
func (w *writer) finish() {
	if len(w.changes) == 0 {
		return
	}
	s := w.s
	s.rev = w.rev
	for _, c := range w.changes {
		s.log = append(s.log, c.rec)
	}
	s.hub.notify(w.rev, w.changes)
}

// put writes key at w.rev. leaseID must exist (or be 0); ignoreValue and
// ignoreLease require the key to exist. Both are checked before any write.
func (w *writer) put(key, value []byte, leaseID int64, ignoreValue, ignoreLease bool) *record {
	s := w.s
	ki, ok := s.tree.Get(probe(key))
	var prev *record
	if ok {
		l := ki.latest()
		if !l.tombstone() {
			prev = l
		}
	} else {
		ki = keyIndex{key: liveKey(key)}
	}
	// One copy of the key bytes per key: every record shares the index's.
	rec := &record{key: ki.key, value: liveKey(value), mod: w.rev, lease: leaseID, create: w.rev, version: 1}
	if prev != nil {
		rec.create = prev.create
		rec.version = prev.version + 1
		if ignoreValue {
			rec.value = prev.value
		}
		if ignoreLease {
			rec.lease = prev.lease
		}
	}
	ki.revs = append(ki.revs, rec)
	s.tree.ReplaceOrInsert(ki)
	s.size += int64(len(rec.key)+len(rec.value)) + recordOverhead

	var prevLease int64
	if prev != nil {
		prevLease = prev.lease
	}
	if prevLease != rec.lease {
		s.detachLocked(prevLease, rec.key)
		s.attachLocked(rec.lease, rec.key)
	}
	w.changes = append(w.changes, change{rec: rec, prev: ki.eventPrev(rec, s.compactRev)})
	return prev
}

// deleteRange deletes the live keys in [key, end) at w.rev and returns the
// records it deleted, in key order.
func (w *writer) deleteRange(key, end []byte) []*record {
	s := w.s
	var victims []keyIndex
	ascend(s.tree, key, end, func(ki *keyIndex) bool {
		if l := ki.latest(); l != nil && !l.tombstone() {
			victims = append(victims, *ki)
		}
		return true
	})
	deleted := make([]*record, 0, len(victims))
	for _, ki := range victims {
		prev := ki.latest()
		tomb := &record{key: prev.key, mod: w.rev}
		ki.revs = append(ki.revs, tomb)
		s.tree.ReplaceOrInsert(ki)
		s.size += int64(len(tomb.key)) + recordOverhead
		s.detachLocked(prev.lease, prev.key)
		w.changes = append(w.changes, change{rec: tomb, prev: ki.eventPrev(tomb, s.compactRev)})
		deleted = append(deleted, prev)
	}
	return deleted
}

// Put writes a key as etcd's KV.Put does.
func (s *Store) Put(r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := ValidatePut(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPutLocked(r); err != nil {
		return nil, err
	}
	w := s.newWriter()
	resp := w.applyPut(r)
	w.finish()
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return resp, nil
}

// checkPutLocked checks what a put needs from the current state, in etcd's
// order: the lease first, then the key that ignore_value/ignore_lease need.
func (s *Store) checkPutLocked(r *pb.PutRequest) error {
	if r.Lease != 0 {
		if _, ok := s.leases[r.Lease]; !ok {
			return ErrLeaseNotFound
		}
	}
	if r.IgnoreValue || r.IgnoreLease {
		if s.liveLocked(r.Key) == nil {
			return ErrKeyNotFound
		}
	}
	return nil
}

func (w *writer) applyPut(r *pb.PutRequest) *pb.PutResponse {
	prev := w.put(r.Key, r.Value, r.Lease, r.IgnoreValue, r.IgnoreLease)
	resp := &pb.PutResponse{}
	if r.PrevKv && prev != nil {
		resp.PrevKv = toKV(prev, false)
	}
	return resp
}

// DeleteRange deletes keys as etcd's KV.DeleteRange does. Deleting nothing
// leaves the revision unchanged.
func (s *Store) DeleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := ValidateDeleteRange(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.newWriter()
	resp := w.applyDeleteRange(r)
	w.finish()
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return resp, nil
}

func (w *writer) applyDeleteRange(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	deleted := w.deleteRange(r.Key, r.RangeEnd)
	resp := &pb.DeleteRangeResponse{Deleted: int64(len(deleted))}
	if r.PrevKv && len(deleted) > 0 {
		resp.PrevKvs = make([]*mvccpb.KeyValue, len(deleted))
		for i, d := range deleted {
			resp.PrevKvs[i] = toKV(d, false)
		}
	}
	return resp
}
