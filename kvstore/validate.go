package kvstore

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The Validate functions check a request on its own, without the store's
// state, as etcd's gRPC layer does before a request is proposed. The store
// runs them again on every call, so an invalid request never changes state.

// ValidateRange checks a range request.
func ValidateRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return ErrInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return ErrInvalidSortOption
	}
	return nil
}

// ValidatePut checks a put request.
func ValidatePut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return ErrValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return ErrLeaseProvided
	}
	return nil
}

// ValidateDeleteRange checks a delete request.
func ValidateDeleteRange(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// ValidateTxn checks a txn request: at most maxOps compares and ops per
// branch (nested txns share what their parent left of the budget), no empty
// keys or ops, and no key written twice on any path through the txn.
func ValidateTxn(r *pb.TxnRequest, maxOps int) error {
	if err := validateTxnOps(r, maxOps); err != nil {
		return err
	}
	if _, _, err := checkWrites(r.Success); err != nil {
		return err
	}
	_, _, err := checkWrites(r.Failure)
	return err
}

func validateTxnOps(r *pb.TxnRequest, maxOps int) error {
	n := max(len(r.Compare), len(r.Success), len(r.Failure))
	if n > maxOps {
		return ErrTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return ErrEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := validateOp(op, maxOps-n); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateOp(op *pb.RequestOp, maxOps int) error {
	switch {
	case op.GetRequestRange() != nil:
		return ValidateRange(op.GetRequestRange())
	case op.GetRequestPut() != nil:
		return ValidatePut(op.GetRequestPut())
	case op.GetRequestDeleteRange() != nil:
		return ValidateDeleteRange(op.GetRequestDeleteRange())
	case op.GetRequestTxn() != nil:
		return validateTxnOps(op.GetRequestTxn(), maxOps)
	}
	// An empty op: etcd answers "key not found" here too.
	return ErrKeyNotFound
}

// span is the key interval a delete covers, as etcd's duplicate check sees
// it: an empty end is the single key; any other end bounds [key, end) by
// plain byte order, so a from-key delete (end "\x00") overlaps no put.
type span struct{ key, end []byte }

func (sp span) covers(k []byte) bool {
	if len(sp.end) == 0 {
		return bytes.Equal(k, sp.key)
	}
	return bytes.Compare(sp.key, k) <= 0 && bytes.Compare(k, sp.end) < 0
}

func coveredBy(dels []span, k []byte) bool {
	for _, d := range dels {
		if d.covers(k) {
			return true
		}
	}
	return false
}

// checkWrites rejects a branch that puts a key twice or puts a key it also
// deletes, including through nested txns. The two branches of a nested txn
// exclude each other, so they may write the same key. Deletes may overlap.
func checkWrites(ops []*pb.RequestOp) (map[string]struct{}, []span, error) {
	var dels []span
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, span{d.Key, d.RangeEnd})
		}
	}
	puts := make(map[string]struct{}, len(ops))
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		thenPuts, thenDels, err := checkWrites(t.Success)
		if err != nil {
			return nil, nil, err
		}
		elsePuts, elseDels, err := checkWrites(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range thenPuts {
			if _, dup := puts[k]; dup || coveredBy(dels, []byte(k)) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range elsePuts {
			if _, dup := puts[k]; dup {
				if _, inThen := thenPuts[k]; !inThen {
					return nil, nil, ErrDuplicateKey
				}
			}
			if coveredBy(dels, []byte(k)) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, thenDels...)
		dels = append(dels, elseDels...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		if _, dup := puts[string(p.Key)]; dup || coveredBy(dels, p.Key) {
			return nil, nil, ErrDuplicateKey
		}
		// The key's bytes, not a copy: the map lives only while the
		// request is checked, and nothing changes the request meanwhile.
		puts[liveKey(p.Key)] = struct{}{}
	}
	return puts, dels, nil
}
