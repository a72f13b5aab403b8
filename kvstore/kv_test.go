package kvstore

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestRevisionRules(t *testing.T) {
	s := New(Config{})
	steps := []struct {
		name    string
		do      func() (int64, error) // returns header revision
		wantRev int64
	}{
		{"fresh store", func() (int64, error) { return s.Rev(), nil }, 1},
		{"first put", func() (int64, error) {
			r, err := s.Put(&pb.PutRequest{Key: b("a"), Value: b("1")})
			return r.GetHeader().GetRevision(), err
		}, 2},
		{"put of the same value still writes", func() (int64, error) {
			r, err := s.Put(&pb.PutRequest{Key: b("a"), Value: b("1")})
			return r.GetHeader().GetRevision(), err
		}, 3},
		{"delete of a missing key changes nothing", func() (int64, error) {
			r, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("zzz")})
			return r.GetHeader().GetRevision(), err
		}, 3},
		{"txn with three writes is one revision", func() (int64, error) {
			r, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				putOp("b", "1"), putOp("c", "1"), delOp("a", ""),
			}})
			return r.GetHeader().GetRevision(), err
		}, 4},
		{"read-only txn", func() (int64, error) {
			r, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp("a", "")}})
			return r.GetHeader().GetRevision(), err
		}, 4},
		{"txn whose only write deletes nothing", func() (int64, error) {
			r, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("nothing", "")}})
			return r.GetHeader().GetRevision(), err
		}, 4},
		{"failed put does not bump", func() (int64, error) {
			_, err := s.Put(&pb.PutRequest{Key: b("x"), Lease: 42})
			wantErr(t, err, ErrLeaseNotFound)
			return s.Rev(), nil
		}, 4},
		{"compaction does not bump", func() (int64, error) {
			err := s.Compact(4)
			return s.Rev(), err
		}, 4},
		{"delete after compaction", func() (int64, error) {
			r, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("b")})
			return r.GetHeader().GetRevision(), err
		}, 5},
	}
	for _, st := range steps {
		rev, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if rev != st.wantRev {
			t.Fatalf("%s: revision %d, want %d", st.name, rev, st.wantRev)
		}
	}
}

func TestKeyMetadata(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "k", "v1", 0) // rev 2
	mustPut(t, s, "k", "v2", 0) // rev 3
	mustPut(t, s, "o", "x", 0)  // rev 4
	kv := mustRange(t, s, &pb.RangeRequest{Key: b("k")}).Kvs[0]
	if kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 || string(kv.Value) != "v2" {
		t.Fatalf("after two puts: %v", kv)
	}
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("k")}); err != nil { // rev 5
		t.Fatal(err)
	}
	mustPut(t, s, "k", "v3", 0) // rev 6
	kv = mustRange(t, s, &pb.RangeRequest{Key: b("k")}).Kvs[0]
	if kv.CreateRevision != 6 || kv.ModRevision != 6 || kv.Version != 1 {
		t.Fatalf("delete must reset version and create revision: %v", kv)
	}
	old := mustRange(t, s, &pb.RangeRequest{Key: b("k"), Revision: 3})
	if len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "v2" || old.Header.Revision != 6 {
		t.Fatalf("read at 3: %v", old)
	}
	if gone := mustRange(t, s, &pb.RangeRequest{Key: b("k"), Revision: 5}); len(gone.Kvs) != 0 || gone.Count != 0 {
		t.Fatalf("read at the delete revision: %v", gone)
	}
}

func fill(t *testing.T, s *Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		mustPut(t, s, k, "val-"+k, 0)
	}
}

func TestRangeShapes(t *testing.T) {
	s := New(Config{})
	fill(t, s, "a", "b", "b/1", "b/2", "b/3", "c", "d")
	tests := []struct {
		name string
		req  *pb.RangeRequest
		want []string
		more bool
		cnt  int64
	}{
		{"single key", &pb.RangeRequest{Key: b("b")}, []string{"b"}, false, 1},
		{"missing key", &pb.RangeRequest{Key: b("bb")}, nil, false, 0},
		{"half-open range", &pb.RangeRequest{Key: b("b"), RangeEnd: b("c")}, []string{"b", "b/1", "b/2", "b/3"}, false, 4},
		{"prefix", &pb.RangeRequest{Key: b("b/"), RangeEnd: prefixEnd("b/")}, []string{"b/1", "b/2", "b/3"}, false, 3},
		{"from key", &pb.RangeRequest{Key: b("c"), RangeEnd: []byte{0}}, []string{"c", "d"}, false, 2},
		{"all keys", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, []string{"a", "b", "b/1", "b/2", "b/3", "c", "d"}, false, 7},
		{"end before key is empty", &pb.RangeRequest{Key: b("c"), RangeEnd: b("a")}, nil, false, 0},
		{"end equal key is empty", &pb.RangeRequest{Key: b("c"), RangeEnd: b("c")}, nil, false, 0},
		{"limit sets more, count ignores limit", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), Limit: 2}, []string{"a", "b"}, true, 7},
		{"limit equal to size", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), Limit: 7}, []string{"a", "b", "b/1", "b/2", "b/3", "c", "d"}, false, 7},
		{"descending by key", &pb.RangeRequest{Key: b("a"), RangeEnd: b("c"), SortOrder: pb.RangeRequest_DESCEND}, []string{"b/3", "b/2", "b/1", "b", "a"}, false, 5},
		{"descending with limit", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), SortOrder: pb.RangeRequest_DESCEND, Limit: 2}, []string{"d", "c"}, true, 7},
		{"by create revision desc", &pb.RangeRequest{Key: b("b"), RangeEnd: b("c"), SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_DESCEND}, []string{"b/3", "b/2", "b/1", "b"}, false, 4},
		{"by mod revision, order NONE means ascending", &pb.RangeRequest{Key: b("b"), RangeEnd: b("c"), SortTarget: pb.RangeRequest_MOD}, []string{"b", "b/1", "b/2", "b/3"}, false, 4},
		{"by value desc", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND, Limit: 1}, []string{"d"}, true, 7},
		{"min mod revision filter keeps count", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), MinModRevision: 7}, []string{"c", "d"}, false, 7},
		{"max mod revision filter", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), MaxModRevision: 3}, []string{"a", "b"}, false, 7},
		{"create revision window", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), MinCreateRevision: 4, MaxCreateRevision: 5}, []string{"b/1", "b/2"}, false, 7},
		{"filter then limit", &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), MinCreateRevision: 4, Limit: 1}, []string{"b/1"}, true, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustRange(t, s, tt.req)
			if got := keysOf(resp.Kvs); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("keys %v, want %v", got, tt.want)
			}
			if resp.More != tt.more || resp.Count != tt.cnt {
				t.Fatalf("more=%v count=%d, want more=%v count=%d", resp.More, resp.Count, tt.more, tt.cnt)
			}
			if resp.Header.Revision != s.Rev() {
				t.Fatalf("header revision %d, want %d", resp.Header.Revision, s.Rev())
			}
		})
	}
}

func TestRangeOnlyOptions(t *testing.T) {
	s := New(Config{})
	fill(t, s, "a", "b", "c")
	ko := mustRange(t, s, &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), KeysOnly: true})
	for _, kv := range ko.Kvs {
		if kv.Value != nil || kv.ModRevision == 0 {
			t.Fatalf("keys_only must drop values and keep metadata: %v", kv)
		}
	}
	// keys_only sorted by value sorts by the real values, then drops them.
	kov := mustRange(t, s, &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND})
	if got := keysOf(kov.Kvs); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("keys_only by value: %v", got)
	}
	co := mustRange(t, s, &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), CountOnly: true, Limit: 1})
	if len(co.Kvs) != 0 || co.Count != 3 || co.More {
		t.Fatalf("count_only: %v", co)
	}
}

func TestRangeRevisionErrors(t *testing.T) {
	s := New(Config{})
	fill(t, s, "a", "a", "a", "a") // revs 2..5
	_, err := s.Range(&pb.RangeRequest{Key: b("a"), Revision: 6})
	wantErr(t, err, ErrFutureRev)
	if err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	_, err = s.Range(&pb.RangeRequest{Key: b("a"), Revision: 3})
	wantErr(t, err, ErrCompacted)
	at := mustRange(t, s, &pb.RangeRequest{Key: b("a"), Revision: 4})
	if len(at.Kvs) != 1 || at.Kvs[0].ModRevision != 4 {
		t.Fatalf("read at the compacted revision: %v", at)
	}
}

func TestValidation(t *testing.T) {
	s := New(Config{MaxTxnOps: 3})
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"range empty key", func() error { _, e := s.Range(&pb.RangeRequest{}); return e }, ErrEmptyKey},
		{"range bad sort order", func() error {
			_, e := s.Range(&pb.RangeRequest{Key: b("a"), SortOrder: 7})
			return e
		}, ErrInvalidSortOption},
		{"range bad sort target", func() error {
			_, e := s.Range(&pb.RangeRequest{Key: b("a"), SortTarget: 9})
			return e
		}, ErrInvalidSortOption},
		{"put empty key", func() error { _, e := s.Put(&pb.PutRequest{Value: b("v")}); return e }, ErrEmptyKey},
		{"put ignore_value with a value", func() error {
			_, e := s.Put(&pb.PutRequest{Key: b("a"), Value: b("v"), IgnoreValue: true})
			return e
		}, ErrValueProvided},
		{"put ignore_lease with a lease", func() error {
			_, e := s.Put(&pb.PutRequest{Key: b("a"), Lease: 1, IgnoreLease: true})
			return e
		}, ErrLeaseProvided},
		{"put ignore_value on a missing key", func() error {
			_, e := s.Put(&pb.PutRequest{Key: b("missing"), IgnoreValue: true})
			return e
		}, ErrKeyNotFound},
		{"put ignore_lease on a missing key", func() error {
			_, e := s.Put(&pb.PutRequest{Key: b("missing"), IgnoreLease: true})
			return e
		}, ErrKeyNotFound},
		{"put unknown lease", func() error { _, e := s.Put(&pb.PutRequest{Key: b("a"), Lease: 99}); return e }, ErrLeaseNotFound},
		{"delete empty key", func() error { _, e := s.DeleteRange(&pb.DeleteRangeRequest{}); return e }, ErrEmptyKey},
		{"txn too many compares", func() error {
			c := &pb.Compare{Key: b("a")}
			_, e := s.Txn(&pb.TxnRequest{Compare: []*pb.Compare{c, c, c, c}})
			return e
		}, ErrTooManyOps},
		{"txn too many ops", func() error {
			_, e := s.Txn(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp("a", ""), rangeOp("a", ""), rangeOp("a", ""), rangeOp("a", "")}})
			return e
		}, ErrTooManyOps},
		{"nested txn shares the budget", func() error {
			inner := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{rangeOp("a", ""), rangeOp("b", "")}}}}
			_, e := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{inner, rangeOp("a", "")}})
			return e
		}, ErrTooManyOps},
		{"txn compare with empty key", func() error {
			_, e := s.Txn(&pb.TxnRequest{Compare: []*pb.Compare{{}}})
			return e
		}, ErrEmptyKey},
		{"txn empty op", func() error { _, e := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{{}}}); return e }, ErrKeyNotFound},
		{"txn duplicate put", func() error {
			_, e := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("a", "2")}})
			return e
		}, ErrDuplicateKey},
		{"txn put inside its delete range", func() error {
			_, e := s.Txn(&pb.TxnRequest{Failure: []*pb.RequestOp{delOp("a", "c"), putOp("b", "2")}})
			return e
		}, ErrDuplicateKey},
		{"txn put in nested txn and outer", func() error {
			_, e := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), txnOp(nil, []*pb.RequestOp{putOp("a", "2")}, nil)}})
			return e
		}, ErrDuplicateKey},
		{"txn range in the future", func() error {
			r := rangeOp("a", "")
			r.GetRequestRange().Revision = 100
			_, e := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("x", "1"), r}})
			return e
		}, ErrFutureRev},
	}
	for _, tt := range tests {
		rev := s.Rev()
		wantErr(t, tt.do(), tt.want)
		if s.Rev() != rev {
			t.Fatalf("%s: failed request moved the revision", tt.name)
		}
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("failed requests wrote %d keys", n)
	}
}

func TestValidTxnShapes(t *testing.T) {
	s := New(Config{})
	ok := []struct {
		name string
		req  *pb.TxnRequest
	}{
		{"overlapping deletes", &pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "c"), delOp("b", "d")}}},
		{"same key in success and failure", &pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}, Failure: []*pb.RequestOp{putOp("a", "2")}}},
		{"same key in both branches of a nested txn", &pb.TxnRequest{Success: []*pb.RequestOp{txnOp(nil, []*pb.RequestOp{putOp("a", "1")}, []*pb.RequestOp{putOp("a", "2")})}}},
		{"from-key delete and a put after it (etcd does not see the overlap)", &pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "\x00"), putOp("b", "1")}}},
	}
	for _, tt := range ok {
		if _, err := s.Txn(tt.req); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: b(k), Value: b(v)}}}
}

func delOp(k, end string) *pb.RequestOp {
	r := &pb.DeleteRangeRequest{Key: b(k)}
	if end != "" {
		r.RangeEnd = b(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func rangeOp(k, end string) *pb.RequestOp {
	r := &pb.RangeRequest{Key: b(k)}
	if end != "" {
		r.RangeEnd = b(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func txnOp(cmp []*pb.Compare, then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: cmp, Success: then, Failure: els}}}
}

func TestPutOptions(t *testing.T) {
	s := New(Config{})
	l1, _ := s.LeaseGrant(1, 10)
	l2, _ := s.LeaseGrant(2, 10)
	first := mustPut(t, s, "k", "v1", l1.ID)
	if first.PrevKv != nil {
		t.Fatalf("prev_kv of a new key: %v", first.PrevKv)
	}
	resp, err := s.Put(&pb.PutRequest{Key: b("k"), Value: b("v2"), PrevKv: true, IgnoreLease: true})
	if err != nil || string(resp.PrevKv.GetValue()) != "v1" || resp.PrevKv.Lease != l1.ID {
		t.Fatalf("prev_kv: %v %v", resp, err)
	}
	kv := mustRange(t, s, &pb.RangeRequest{Key: b("k")}).Kvs[0]
	if kv.Lease != l1.ID || string(kv.Value) != "v2" {
		t.Fatalf("ignore_lease must keep the lease: %v", kv)
	}
	if _, err := s.Put(&pb.PutRequest{Key: b("k"), IgnoreValue: true, Lease: l2.ID}); err != nil {
		t.Fatal(err)
	}
	kv = mustRange(t, s, &pb.RangeRequest{Key: b("k")}).Kvs[0]
	if kv.Lease != l2.ID || string(kv.Value) != "v2" || kv.Version != 3 {
		t.Fatalf("ignore_value must keep the value and move the lease: %v", kv)
	}
	if got, _ := s.LeaseKeys(l1.ID); len(got.Keys) != 0 {
		t.Fatalf("key still attached to the old lease: %q", got.Keys)
	}
	if got, _ := s.LeaseKeys(l2.ID); len(got.Keys) != 1 {
		t.Fatalf("key not attached to the new lease: %q", got.Keys)
	}
	mustPut(t, s, "k", "v3", 0)
	if got, _ := s.LeaseKeys(l2.ID); len(got.Keys) != 0 {
		t.Fatalf("put without lease must detach: %q", got.Keys)
	}
}

func TestDeleteRange(t *testing.T) {
	s := New(Config{})
	fill(t, s, "a", "p/1", "p/2", "p/3", "z")
	resp, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("p/"), RangeEnd: prefixEnd("p/"), PrevKv: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Deleted != 3 || !slices.Equal(keysOf(resp.PrevKvs), []string{"p/1", "p/2", "p/3"}) || string(resp.PrevKvs[0].Value) != "val-p/1" {
		t.Fatalf("prefix delete: %v", resp)
	}
	if resp.Header.Revision != 7 {
		t.Fatalf("one revision for the whole delete, got %d", resp.Header.Revision)
	}
	resp, _ = s.DeleteRange(&pb.DeleteRangeRequest{Key: b("p/"), RangeEnd: prefixEnd("p/"), PrevKv: true})
	if resp.Deleted != 0 || len(resp.PrevKvs) != 0 || resp.Header.Revision != 7 {
		t.Fatalf("second delete: %v", resp)
	}
	resp, _ = s.DeleteRange(&pb.DeleteRangeRequest{Key: b("a"), RangeEnd: []byte{0}})
	if resp.Deleted != 2 {
		t.Fatalf("from-key delete: %v", resp)
	}
}

func TestTxnCompares(t *testing.T) {
	s := New(Config{})
	l, _ := s.LeaseGrant(7, 10)
	mustPut(t, s, "k", "m", l.ID) // rev 2: create 2, mod 2, version 1
	mustPut(t, s, "k", "m", l.ID) // rev 3: mod 3, version 2
	mustPut(t, s, "k2", "z", 0)   // rev 4
	cmp := func(key string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult, v any) *pb.Compare {
		c := &pb.Compare{Key: b(key), Target: target, Result: result}
		switch x := v.(type) {
		case string:
			c.TargetUnion = &pb.Compare_Value{Value: b(x)}
		case int64:
			switch target {
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: x}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: x}
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: x}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: x}
			}
		}
		return c
	}
	tests := []struct {
		name string
		c    *pb.Compare
		want bool
	}{
		{"version equal", cmp("k", pb.Compare_VERSION, pb.Compare_EQUAL, int64(2)), true},
		{"version greater", cmp("k", pb.Compare_VERSION, pb.Compare_GREATER, int64(1)), true},
		{"version less", cmp("k", pb.Compare_VERSION, pb.Compare_LESS, int64(2)), false},
		{"create equal", cmp("k", pb.Compare_CREATE, pb.Compare_EQUAL, int64(2)), true},
		{"mod not equal", cmp("k", pb.Compare_MOD, pb.Compare_NOT_EQUAL, int64(3)), false},
		{"mod less", cmp("k", pb.Compare_MOD, pb.Compare_LESS, int64(4)), true},
		{"value equal", cmp("k", pb.Compare_VALUE, pb.Compare_EQUAL, "m"), true},
		{"value greater", cmp("k", pb.Compare_VALUE, pb.Compare_GREATER, "a"), true},
		{"value less", cmp("k", pb.Compare_VALUE, pb.Compare_LESS, "a"), false},
		{"lease equal", cmp("k", pb.Compare_LEASE, pb.Compare_EQUAL, int64(7)), true},
		{"missing key has version 0", cmp("nope", pb.Compare_VERSION, pb.Compare_EQUAL, int64(0)), true},
		{"missing key has create 0", cmp("nope", pb.Compare_CREATE, pb.Compare_EQUAL, int64(0)), true},
		{"missing key has lease 0", cmp("nope", pb.Compare_LEASE, pb.Compare_EQUAL, int64(0)), true},
		{"missing key value equal empty is false", cmp("nope", pb.Compare_VALUE, pb.Compare_EQUAL, ""), false},
		{"missing key value not equal is false", cmp("nope", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "x"), false},
		{"range: all keys must match", func() *pb.Compare {
			c := cmp("k", pb.Compare_MOD, pb.Compare_GREATER, int64(2))
			c.RangeEnd = b("l")
			return c
		}(), true},
		{"range: one key fails", func() *pb.Compare {
			c := cmp("k", pb.Compare_VALUE, pb.Compare_EQUAL, "m")
			c.RangeEnd = b("l")
			return c
		}(), false},
		{"empty range compares a zero key", func() *pb.Compare {
			c := cmp("x", pb.Compare_VERSION, pb.Compare_EQUAL, int64(0))
			c.RangeEnd = b("y")
			return c
		}(), true},
	}
	for _, tt := range tests {
		resp, err := s.Txn(&pb.TxnRequest{Compare: []*pb.Compare{tt.c}})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.Succeeded != tt.want {
			t.Errorf("%s: succeeded=%v, want %v", tt.name, resp.Succeeded, tt.want)
		}
	}
}

func TestTxnBranchesAndNesting(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "k", "1", 0) // rev 2
	cond := &pb.Compare{Key: b("k"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: b("1")}}
	// The nested compare sees the state before the txn: k is still "1" even
	// though the outer success branch changed it first.
	resp, err := s.Txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cond},
		Success: []*pb.RequestOp{
			putOp("k", "2"),
			rangeOp("k", ""),
			txnOp([]*pb.Compare{cond}, []*pb.RequestOp{putOp("nested", "then")}, []*pb.RequestOp{putOp("nested", "else")}),
		},
		Failure: []*pb.RequestOp{putOp("failure", "x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || len(resp.Responses) != 3 || resp.Header.Revision != 3 {
		t.Fatalf("txn: %v", resp)
	}
	read := resp.Responses[1].GetResponseRange()
	if string(read.Kvs[0].Value) != "2" || read.Kvs[0].ModRevision != 3 {
		t.Fatalf("a read in a txn sees its earlier writes: %v", read)
	}
	nested := resp.Responses[2].GetResponseTxn()
	if !nested.Succeeded {
		t.Fatalf("nested compare must see the state before the txn")
	}
	got := mustRange(t, s, &pb.RangeRequest{Key: b("nested")})
	if string(got.Kvs[0].Value) != "then" || got.Kvs[0].ModRevision != 3 {
		t.Fatalf("nested write: %v", got.Kvs)
	}
	if f := mustRange(t, s, &pb.RangeRequest{Key: b("failure")}); f.Count != 0 {
		t.Fatal("failure branch ran")
	}
}

func TestCompact(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "live", "1", 0)                                                    // 2
	mustPut(t, s, "live", "2", 0)                                                    // 3
	mustPut(t, s, "dead", "1", 0)                                                    // 4
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("dead")}); err != nil { // 5
		t.Fatal(err)
	}
	mustPut(t, s, "live", "3", 0) // 6
	wantErr(t, s.Compact(7), ErrFutureRev)
	sizeBefore := s.Size()
	if err := s.Compact(5); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Compact(5), ErrCompacted)
	wantErr(t, s.Compact(4), ErrCompacted)
	if s.Size() >= sizeBefore {
		t.Fatalf("size did not drop: %d -> %d", sizeBefore, s.Size())
	}
	at5 := mustRange(t, s, &pb.RangeRequest{Key: b("a"), RangeEnd: b("z"), Revision: 5})
	if got := keysOf(at5.Kvs); !slices.Equal(got, []string{"live"}) || at5.Kvs[0].ModRevision != 3 {
		t.Fatalf("at the compacted revision the newest version is kept: %v", at5.Kvs)
	}
	if ki, ok := s.tree.Get(keyIndex{key: "dead"}); !ok || len(ki.revs) != 1 || !ki.revs[0].tombstone() {
		t.Fatal("a delete exactly at the compacted revision stays, as in etcd")
	}
	ki, _ := s.tree.Get(keyIndex{key: "live"})
	if len(ki.revs) != 2 {
		t.Fatalf("live key keeps exactly the version at 5 and later: %d records", len(ki.revs))
	}
	if err := s.Compact(6); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.tree.Get(keyIndex{key: "dead"}); ok {
		t.Fatal("a key deleted before the compacted revision must be gone from the index")
	}
	if s.Rev() != 6 {
		t.Fatalf("revision moved by compaction: %d", s.Rev())
	}
}

func TestLeases(t *testing.T) {
	s := New(Config{})
	a, err := s.LeaseGrant(0, 5)
	if err != nil || a.ID != 1 || a.TTL != 5 {
		t.Fatalf("grant with ID 0: %v %v", a, err)
	}
	if _, err := s.LeaseGrant(2, 5); err != nil {
		t.Fatal(err)
	}
	c, _ := s.LeaseGrant(0, 5)
	if c.ID != 3 {
		t.Fatalf("ID 0 must skip IDs in use: got %d", c.ID)
	}
	_, err = s.LeaseGrant(2, 5)
	wantErr(t, err, ErrLeaseExists)
	_, err = s.LeaseGrant(9, MaxLeaseTTL+1)
	wantErr(t, err, ErrLeaseTTLTooLarge)

	for i := range 3 {
		mustPut(t, s, fmt.Sprintf("l/%d", i), "v", a.ID)
	}
	mustPut(t, s, "other", "v", 2)
	rev := s.Rev()
	got, hdr, err := s.LeaseRevoke(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 3 || hdr.Revision != rev+1 {
		t.Fatalf("revoke must delete the 3 keys in one revision: %q at %d (was %d)", got.Keys, hdr.Revision, rev)
	}
	if r := mustRange(t, s, &pb.RangeRequest{Key: b("l/"), RangeEnd: prefixEnd("l/")}); r.Count != 0 {
		t.Fatalf("keys left after revoke: %v", r.Kvs)
	}
	_, hdr, err = s.LeaseRevoke(3)
	if err != nil || hdr.Revision != rev+1 {
		t.Fatalf("revoke of a lease without keys must not bump: %v %v", hdr, err)
	}
	_, _, err = s.LeaseRevoke(a.ID)
	wantErr(t, err, ErrLeaseNotFound)
	_, err = s.LeaseKeys(a.ID)
	wantErr(t, err, ErrLeaseNotFound)
	if ls := s.Leases(); len(ls) != 1 || ls[0].ID != 2 {
		t.Fatalf("leases: %v", ls)
	}
	if k, _ := s.LeaseKeys(2); len(k.Keys) != 1 || string(k.Keys[0]) != "other" {
		t.Fatalf("lease keys: %q", k.Keys)
	}
}

// A put with ignore_value after a from-key delete of its key in the same txn
// is allowed by etcd's duplicate check and crashes etcd when applied. Here
// the txn fails as a whole with "key not found" and changes nothing.
func TestTxnIgnoreValueAfterFromKeyDelete(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "b", "1", 0)
	ignore := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: b("b"), IgnoreValue: true}}}
	for _, req := range []*pb.TxnRequest{
		{Success: []*pb.RequestOp{delOp("a", "\x00"), ignore}},
		{Success: []*pb.RequestOp{delOp("a", "\x00"), txnOp(nil, []*pb.RequestOp{ignore}, nil)}},
	} {
		_, err := s.Txn(req)
		wantErr(t, err, ErrKeyNotFound)
		if s.Rev() != 2 {
			t.Fatalf("failed txn wrote: revision %d", s.Rev())
		}
	}
	// The same put before the delete is fine.
	if _, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{ignore, delOp("c", "\x00")}}); err != nil {
		t.Fatal(err)
	}
}

// TestCompactReleasesMemory writes 64 MiB of history to a few keys and
// requires compaction to hand nearly all of it back to the garbage collector.
func TestCompactReleasesMemory(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	s := New(Config{})
	for i := range 64 << 10 {
		v := make([]byte, 1024)
		mustPut(t, s, fmt.Sprintf("k%d", i%4), string(v), 0)
	}
	full := heap()
	if full-base < 64<<20 {
		t.Fatalf("history takes only %d bytes; the test measures nothing", full-base)
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	after := heap()
	if after > base+4<<20 {
		t.Fatalf("after compaction %d MiB are still held (before: %d MiB)", (after-base)>>20, (full-base)>>20)
	}
	runtime.KeepAlive(s)
}
