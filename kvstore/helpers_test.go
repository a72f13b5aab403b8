package kvstore

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func b(s string) []byte { return []byte(s) }

func mustPut(t testing.TB, s *Store, key, val string, lease int64) *pb.PutResponse {
	t.Helper()
	resp, err := s.Put(&pb.PutRequest{Key: b(key), Value: b(val), Lease: lease})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return resp
}

func mustRange(t testing.TB, s *Store, r *pb.RangeRequest) *pb.RangeResponse {
	t.Helper()
	resp, err := s.Range(r)
	if err != nil {
		t.Fatalf("range %q-%q: %v", r.Key, r.RangeEnd, err)
	}
	return resp
}

func keysOf(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

func wantErr(t testing.TB, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error = %v, want %v", got, want)
	}
}

func prefixEnd(p string) []byte {
	end := []byte(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
