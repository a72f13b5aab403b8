package kvstore

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Txn applies a transaction as etcd's KV.Txn does: the compares of the txn
// and of every nested txn on the chosen path are evaluated against the state
// before the txn, every op on that path is checked before anything is
// written, and then the ops run in order, each seeing the writes before it.
// A txn that writes is one revision; a txn that writes nothing leaves the
// revision unchanged.
func (s *Store) Txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := ValidateTxn(r, s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.txnPathLocked(r, nil)
	var c txnCheck
	if _, err := s.checkTxnLocked(r, path, &c); err != nil {
		return nil, err
	}
	if c.deleted != nil {
		return nil, c.deleted
	}
	w := s.newWriter()
	resp, _ := w.applyTxn(r, path)
	w.finish()
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return resp, nil
}

// ReadTxn answers r as Txn would when the branches its compares choose,
// nested txns included, hold no put or delete: such a txn writes nothing,
// so it is a read, and the server may answer it without the log. When
// the chosen path writes, ReadTxn changes nothing and reports false.
func (s *Store) ReadTxn(r *pb.TxnRequest) (*pb.TxnResponse, bool, error) {
	if err := ValidateTxn(r, s.cfg.MaxTxnOps); err != nil {
		return nil, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	path := s.txnPathLocked(r, nil)
	if writes, _ := pathWrites(r, path); writes {
		return nil, false, nil
	}
	var c txnCheck
	if _, err := s.checkTxnLocked(r, path, &c); err != nil {
		return nil, true, err
	}
	// The writer only reads: the path holds ranges and read-only nested
	// txns, so it has nothing to finish.
	resp, _ := s.newWriter().applyTxn(r, path)
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return resp, true, nil
}

// pathWrites reports whether an op on path, the outcomes of r's compares
// and its nested txns' (see txnPathLocked), puts or deletes, and how many
// entries of path r and its nested txns used.
func pathWrites(r *pb.TxnRequest, path []bool) (bool, int) {
	used := 1
	for _, op := range branch(r, path[0]) {
		switch {
		case op.GetRequestPut() != nil, op.GetRequestDeleteRange() != nil:
			return true, used
		case op.GetRequestTxn() != nil:
			writes, n := pathWrites(op.GetRequestTxn(), path[used:])
			if writes {
				return true, used
			}
			used += n
		}
	}
	return false, used
}

// txnPathLocked evaluates the compares of r and of the nested txns in the
// branch it takes, depth first, and appends each outcome to path.
func (s *Store) txnPathLocked(r *pb.TxnRequest, path []bool) []bool {
	ok := s.comparesLocked(r.Compare)
	path = append(path, ok)
	for _, op := range branch(r, ok) {
		if t := op.GetRequestTxn(); t != nil {
			path = s.txnPathLocked(t, path)
		}
	}
	return path
}

func branch(r *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return r.Success
	}
	return r.Failure
}

// txnCheck carries what checkTxnLocked learns along the txn's path.
//
// etcd's duplicate check does not see a from-key delete (end "\x00")
// overlap a put, so a put with ignore_value or ignore_lease may follow a
// delete of its key in the same txn; etcd crashes applying it. Here such a
// txn fails with ErrKeyNotFound before anything is written, which is what
// the put would have met. The other checks, which etcd does make, take
// precedence.
type txnCheck struct {
	fromKey [][]byte // start keys of the from-key deletes so far, in execution order
	deleted error    // ErrKeyNotFound once an ignore_* put follows such a delete
}

// checkTxnLocked checks every op on path against the state before the txn
// and returns how many entries of path the txn and its nested txns used.
//
// checkTxnLocked also fills c; see txnCheck.
func (s *Store) checkTxnLocked(r *pb.TxnRequest, path []bool, c *txnCheck) (int, error) {
	used := 1
	for _, op := range branch(r, path[0]) {
		switch {
		case op.GetRequestRange() != nil:
			rr := op.GetRequestRange()
			if rr.Revision > s.rev {
				return 0, ErrFutureRev
			}
			// Unlike a plain range, which reads a negative revision as the
			// current one, etcd's txn check compares it with the compacted
			// revision.
			if rr.Revision != 0 && rr.Revision < s.compactRev {
				return 0, ErrCompacted
			}
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if err := s.checkPutLocked(p); err != nil {
				return 0, err
			}
			if p.IgnoreValue || p.IgnoreLease {
				for _, k := range c.fromKey {
					if bytes.Compare(k, p.Key) <= 0 && c.deleted == nil {
						c.deleted = ErrKeyNotFound
					}
				}
			}
		case op.GetRequestDeleteRange() != nil:
			if d := op.GetRequestDeleteRange(); len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0 {
				c.fromKey = append(c.fromKey, d.Key)
			}
		case op.GetRequestTxn() != nil:
			n, err := s.checkTxnLocked(op.GetRequestTxn(), path[used:], c)
			if err != nil {
				return 0, err
			}
			used += n
		}
	}
	return used, nil
}

// applyTxn runs the ops of the path through w. It cannot fail: everything
// that could fail was checked by checkTxnLocked. The headers of the inner
// responses are etcd's: a range carries the revision it read as current, a
// put the revision of the txn, a delete the revision of the txn once the txn
// has changed anything, and a nested txn an empty header.
func (w *writer) applyTxn(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	used := 1
	ops := branch(r, path[0])
	resp := &pb.TxnResponse{Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	for i, op := range ops {
		out := &pb.ResponseOp{}
		switch {
		case op.GetRequestRange() != nil:
			rr, err := w.s.rangeLocked(op.GetRequestRange(), w.curRev())
			if err != nil {
				// Unreachable: revisions were checked against the state
				// before the txn, and the txn only moves forward.
				rr = &pb.RangeResponse{}
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case op.GetRequestPut() != nil:
			pr := w.applyPut(op.GetRequestPut())
			pr.Header = &pb.ResponseHeader{Revision: w.rev}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
		case op.GetRequestDeleteRange() != nil:
			dr := w.applyDeleteRange(op.GetRequestDeleteRange())
			dr.Header = &pb.ResponseHeader{Revision: w.curRev()}
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case op.GetRequestTxn() != nil:
			tr, n := w.applyTxn(op.GetRequestTxn(), path[used:])
			used += n
			tr.Header = &pb.ResponseHeader{}
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}
		}
		resp.Responses[i] = out
	}
	return resp, used
}

func (s *Store) comparesLocked(cs []*pb.Compare) bool {
	for _, c := range cs {
		if !s.compareLocked(c) {
			return false
		}
	}
	return true
}

// compareLocked evaluates one compare at the current revision. Every key in
// the compare's range must satisfy it. A missing key compares as a key whose
// fields are all zero, except that a VALUE compare on a missing key is false.
func (s *Store) compareLocked(c *pb.Compare) bool {
	if len(c.RangeEnd) == 0 {
		rec := s.liveLocked(c.Key)
		if rec == nil {
			return c.Target != pb.Compare_VALUE && compareRecord(c, &record{})
		}
		return compareRecord(c, rec)
	}
	matched, ok := false, true
	ascend(s.tree, c.Key, c.RangeEnd, func(ki *keyIndex) bool {
		rec := ki.latest()
		if rec == nil || rec.tombstone() {
			return true
		}
		matched = true
		ok = compareRecord(c, rec)
		return ok
	})
	if !matched {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		return compareRecord(c, &record{})
	}
	return ok
}

func compareRecord(c *pb.Compare, r *record) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(bytesOf(r.value), c.GetValue())
	case pb.Compare_VERSION:
		result = cmpInt64(r.version, c.GetVersion())
	case pb.Compare_CREATE:
		result = cmpInt64(r.create, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt64(r.mod, c.GetModRevision())
	case pb.Compare_LEASE:
		result = cmpInt64(r.lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
