package kvstore

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// FuzzRestore feeds arbitrary bytes to the snapshot decoder: it must never
// panic, and whatever it accepts must encode back to the same bytes.
func FuzzRestore(f *testing.F) {
	f.Add(encode(f, sampleStore(f)))
	f.Add(encode(f, New(Config{})))
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(Config{})
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			if s.Rev() != 1 || s.Len() != 0 {
				t.Fatal("failed restore changed the store")
			}
			return
		}
		if again := encode(t, s); !bytes.Equal(again, data) {
			t.Fatalf("accepted snapshot does not re-encode to itself")
		}
	})
}

// FuzzTxnRequest decodes arbitrary bytes as a txn and applies it. A request
// the validator rejects must change nothing; one it accepts must apply or
// fail with a state error, also changing nothing on failure. Nothing panics.
func FuzzTxnRequest(f *testing.F) {
	seed := func(r *pb.TxnRequest) {
		data, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	seed(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), rangeOp("a", "z")}})
	seed(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("a"), Target: pb.Compare_VALUE}}, Failure: []*pb.RequestOp{delOp("a", "\x00"), putOp("b", "2")}})
	seed(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(nil, []*pb.RequestOp{putOp("x", "1")}, []*pb.RequestOp{putOp("x", "2")})}})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.TxnRequest
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		s := sampleStore(t)
		before := encode(t, s)
		verr := ValidateTxn(&r, 128)
		_, err := s.Txn(&r)
		if verr != nil && err == nil {
			t.Fatalf("validator rejected (%v) what Txn applied", verr)
		}
		if err != nil && !bytes.Equal(encode(t, s), before) {
			t.Fatalf("failed txn (%v) changed the store", err)
		}
	})
}

// FuzzRangeRequest checks that no range request panics and that a range
// never changes the store.
func FuzzRangeRequest(f *testing.F) {
	f.Add([]byte("key/"), []byte("\x00"), int64(3), int64(0), int32(2), int32(4), int64(0), int64(9))
	f.Fuzz(func(t *testing.T, key, end []byte, limit, rev int64, order, target int32, minMod, maxCreate int64) {
		s := sampleStore(t)
		before := encode(t, s)
		r := &pb.RangeRequest{Key: key, RangeEnd: end, Limit: limit, Revision: rev,
			SortOrder: pb.RangeRequest_SortOrder(order), SortTarget: pb.RangeRequest_SortTarget(target),
			MinModRevision: minMod, MaxCreateRevision: maxCreate}
		resp, err := s.Range(r)
		if err == nil && limit > 0 && int64(len(resp.Kvs)) > limit {
			t.Fatalf("returned %d kvs over limit %d", len(resp.Kvs), limit)
		}
		if !bytes.Equal(encode(t, s), before) {
			t.Fatal("a range changed the store")
		}
	})
}
