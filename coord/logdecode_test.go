package coord

import (
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// genBytes returns nil, empty or a few random bytes, so that empty fields
// (which proto3 leaves off the wire) are covered too.
func genBytes(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, 1+r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

// genInt returns values that exercise every varint length, negatives
// included.
func genInt(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return -r.Int64N(1 << 40)
	}
	return r.Int64N(1 << (1 + r.IntN(62)))
}

func genPut(r *rand.Rand) *pb.PutRequest {
	return &pb.PutRequest{Key: genBytes(r), Value: genBytes(r), Lease: genInt(r),
		PrevKv: r.IntN(2) == 0, IgnoreValue: r.IntN(2) == 0, IgnoreLease: r.IntN(2) == 0}
}

func genDelete(r *rand.Rand) *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: genBytes(r), RangeEnd: genBytes(r), PrevKv: r.IntN(2) == 0}
}

func genRange(r *rand.Rand) *pb.RangeRequest {
	return &pb.RangeRequest{Key: genBytes(r), RangeEnd: genBytes(r), Limit: genInt(r), Revision: genInt(r),
		SortOrder: pb.RangeRequest_SortOrder(r.IntN(4)), SortTarget: pb.RangeRequest_SortTarget(r.IntN(6)),
		Serializable: r.IntN(2) == 0, KeysOnly: r.IntN(2) == 0, CountOnly: r.IntN(2) == 0,
		MinModRevision: genInt(r), MaxModRevision: genInt(r), MinCreateRevision: genInt(r), MaxCreateRevision: genInt(r)}
}

func genCompare(r *rand.Rand) *pb.Compare {
	c := &pb.Compare{Result: pb.Compare_CompareResult(r.IntN(5)), Target: pb.Compare_CompareTarget(r.IntN(6)),
		Key: genBytes(r), RangeEnd: genBytes(r)}
	switch r.IntN(6) {
	case 0:
		c.TargetUnion = &pb.Compare_Version{Version: genInt(r)}
	case 1:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: genInt(r)}
	case 2:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: genInt(r)}
	case 3:
		c.TargetUnion = &pb.Compare_Value{Value: genBytes(r)}
	case 4:
		c.TargetUnion = &pb.Compare_Lease{Lease: genInt(r)}
	}
	return c
}

func genTxn(r *rand.Rand, depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for range r.IntN(4) {
		t.Compare = append(t.Compare, genCompare(r))
	}
	ops := func() []*pb.RequestOp {
		var out []*pb.RequestOp
		for range r.IntN(6) {
			op := &pb.RequestOp{}
			switch n := r.IntN(5); {
			case n == 0:
				op.Request = &pb.RequestOp_RequestRange{RequestRange: genRange(r)}
			case n == 1:
				op.Request = &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: genDelete(r)}
			case n == 2 && depth < 3:
				op.Request = &pb.RequestOp_RequestTxn{RequestTxn: genTxn(r, depth+1)}
			default:
				op.Request = &pb.RequestOp_RequestPut{RequestPut: genPut(r)}
			}
			out = append(out, op)
		}
		return out
	}
	t.Success, t.Failure = ops(), ops()
	return t
}

// genCommand returns a put, delete or txn command: the shapes the hand
// decoder takes.
func genCommand(r *rand.Rand) *pb.InternalRaftRequest {
	req := &pb.InternalRaftRequest{ID: uint64(genInt(r))}
	switch r.IntN(3) {
	case 0:
		req.Put = genPut(r)
	case 1:
		req.DeleteRange = genDelete(r)
	default:
		req.Txn = genTxn(r, 0)
	}
	return req
}

// TestUnmarshalCommandMatchesProto decodes random commands of every shape
// the hand decoder takes, checks that it took them (not the fallback), and
// that the result equals proto.Unmarshal's.
func TestUnmarshalCommandMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 2000 {
		want := genCommand(r)
		data, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var d commandDecoder
		got, ok := d.request(data)
		if !ok {
			t.Fatalf("command %d: hand decoder refused %v", i, want)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("command %d: decoded\n%v\nwant\n%v", i, got, want)
		}
		viaAPI, err := unmarshalCommand(data)
		if err != nil || !proto.Equal(viaAPI, want) {
			t.Fatalf("command %d: unmarshalCommand = %v, %v", i, viaAPI, err)
		}
	}
}

// TestUnmarshalCommandFallsBack: what the hand decoder does not take still
// decodes exactly as proto.Unmarshal decodes it.
func TestUnmarshalCommandFallsBack(t *testing.T) {
	put := &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}
	putBytes, _ := proto.Marshal(put)
	withUnknown := protowire.AppendTag(append([]byte(nil), putBytes...), 99, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 5)
	twoOps := protowire.AppendTag(nil, 2, protowire.BytesType) // RequestOp.request_put
	twoOps = protowire.AppendBytes(twoOps, putBytes)
	twoOps = protowire.AppendTag(twoOps, 3, protowire.BytesType) // and request_delete_range
	twoOps = protowire.AppendBytes(twoOps, nil)

	cases := map[string][]byte{
		"lease grant": mustMarshal(t, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 5}}),
		"header":      mustMarshal(t, &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 3, Username: "u"}, Put: put}),
		"unknown field in a put": protowire.AppendBytes(
			protowire.AppendTag(nil, 4, protowire.BytesType), withUnknown),
		"put twice (merged)": append(mustMarshal(t, &pb.InternalRaftRequest{Put: put}),
			mustMarshal(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Lease: 9}})...),
		"op with two requests": protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), twoOps)),
		"truncated":       mustMarshal(t, &pb.InternalRaftRequest{Put: put})[:3],
		"nested too deep": mustMarshal(t, &pb.InternalRaftRequest{Txn: nestedTxn(maxHandNesting + 1)}),
	}
	for name, data := range cases {
		var d commandDecoder
		if _, ok := d.request(data); ok {
			t.Errorf("%s: the hand decoder took it", name)
		}
		want := new(pb.InternalRaftRequest)
		wantErr := proto.Unmarshal(data, want)
		got, err := unmarshalCommand(data)
		switch {
		case (err != nil) != (wantErr != nil):
			t.Errorf("%s: error %v, proto.Unmarshal's %v", name, err, wantErr)
		case err == nil && !proto.Equal(got, want):
			t.Errorf("%s: decoded %v, proto.Unmarshal %v", name, got, want)
		}
	}
}

// nestedTxn returns a txn with depth levels of txns, one compare inside.
func nestedTxn(depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k")}}}
	for range depth - 1 {
		t = &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}}}
	}
	return t
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzUnmarshalCommand: for any bytes, the hand decoder either refuses
// them or agrees with proto.Unmarshal.
func FuzzUnmarshalCommand(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 5))
	for range 20 {
		f.Add(mustMarshal(f, genCommand(r)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d commandDecoder
		got, ok := d.request(data)
		if !ok {
			return
		}
		want := new(pb.InternalRaftRequest)
		if err := proto.Unmarshal(data, want); err != nil {
			t.Fatalf("hand decoder took what proto.Unmarshal refuses (%v): %x", err, data)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
		}
	})
}

// A txn of 100 puts of 256-byte values: one entry of a bulk load.
func bulkTxn() []byte {
	t := &pb.TxnRequest{}
	for i := range 100 {
		t.Success = append(t.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: fmt.Appendf(nil, "bench/load/%010d", i), Value: make([]byte, 256)}}})
	}
	b, _ := proto.Marshal(&pb.InternalRaftRequest{Txn: t})
	return b
}

func BenchmarkUnmarshalCommandTxn100(b *testing.B) {
	data := bulkTxn()
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unmarshalCommand(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(data, new(pb.InternalRaftRequest)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestUnmarshalCommandNesting: the hand decoder takes txns nested up to
// maxHandNesting deep and leaves deeper ones to proto.Unmarshal.
func TestUnmarshalCommandNesting(t *testing.T) {
	for depth, wantHand := range map[int]bool{1: true, maxHandNesting: true, maxHandNesting + 1: false, 200: false} {
		want := &pb.InternalRaftRequest{Txn: nestedTxn(depth)}
		data := mustMarshal(t, want)
		var d commandDecoder
		got, ok := d.request(data)
		if ok != wantHand {
			t.Errorf("depth %d: hand decoder took it: %v, want %v", depth, ok, wantHand)
		}
		if ok && !proto.Equal(got, want) {
			t.Errorf("depth %d: decoded %v", depth, got)
		}
		if got, err := unmarshalCommand(data); err != nil || !proto.Equal(got, want) {
			t.Errorf("depth %d: unmarshalCommand = %v", depth, err)
		}
	}
}
