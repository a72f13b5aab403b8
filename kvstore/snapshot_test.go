package kvstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// sampleStore builds a store with history, tombstones, leases, a compaction
// and keys written several times in one revision.
func sampleStore(t testing.TB) *Store {
	t.Helper()
	s := New(Config{})
	if _, err := s.LeaseGrant(10, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeaseGrant(11, 60); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		lease := int64(0)
		if i%7 == 0 {
			lease = 10
		}
		mustPut(t, s, fmt.Sprintf("key/%02d", i%13), fmt.Sprintf("value-%d", i), lease)
		if i%9 == 0 {
			if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(fmt.Sprintf("key/%02d", i%5))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Compact(20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("key/", "\x00"), putOp("key/03", "again"), delOp("key/", "\x00"), putOp("z", "last")}}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "leased", "v", 11)
	return s
}

func encode(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := sampleStore(t)
	data := encode(t, s)
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, s, r)
	if !bytes.Equal(encode(t, r), data) {
		t.Fatal("encoding a restored store must give the same bytes")
	}
	// The restored store goes on exactly like the original.
	for _, st := range []*Store{s, r} {
		mustPut(t, st, "after", "x", 11)
		if _, _, err := st.LeaseRevoke(10); err != nil {
			t.Fatal(err)
		}
	}
	checkSameState(t, s, r)
}

// A store large enough for a B-tree of two levels restores to the same
// state, key for key, whatever order buildIndex inserts in.
func TestSnapshotRoundTripManyKeys(t *testing.T) {
	s := New(Config{})
	if _, err := s.LeaseGrant(7, 60); err != nil {
		t.Fatal(err)
	}
	const n = 3_001 // odd, so the two passes differ in size; 2 levels of B-tree
	for i := range n {
		lease := int64(0)
		if i%3 == 0 {
			lease = 7
		}
		mustPut(t, s, fmt.Sprintf("k/%06d", (i*1543)%n), fmt.Sprint(i), lease)
	}
	for i := 0; i < n; i += 10 {
		if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(fmt.Sprintf("k/%06d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	data := encode(t, s)
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// The encoding holds every record, lease and revision; checkSameState
	// would compare every revision's view and take minutes here.
	if !bytes.Equal(encode(t, r), data) || r.Rev() != s.Rev() || r.Size() != s.Size() {
		t.Fatal("the restored store differs from the original")
	}
	if got, want := r.Len(), s.Len(); got != want || want != n-(n+9)/10 {
		t.Fatalf("restored %d live keys, original %d, want %d", got, want, n-(n+9)/10)
	}
	for i := range n {
		rr, err := r.Range(&pb.RangeRequest{Key: []byte(fmt.Sprintf("k/%06d", i))})
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if i%10 == 0 {
			want = 0 // deleted
		}
		if len(rr.Kvs) != want {
			t.Fatalf("k/%06d: %d kvs after restore, want %d", i, len(rr.Kvs), want)
		}
	}
}

func TestSnapshotIsAConsistentView(t *testing.T) {
	s := sampleStore(t)
	want := encode(t, s)
	sn := s.Snapshot()
	mustPut(t, s, "key/01", "changed after the snapshot", 0)
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("key/"), RangeEnd: prefixEnd("key/")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("writes after Snapshot changed what it encodes")
	}
}

func TestSnapshotCorruption(t *testing.T) {
	data := encode(t, sampleStore(t))
	target := New(Config{})
	mustPut(t, target, "mine", "keep me", 0)
	before := encode(t, target)
	check := func(name string, bad []byte) {
		t.Helper()
		if err := target.Restore(bytes.NewReader(bad)); err == nil {
			t.Fatalf("%s: restore accepted a corrupt snapshot", name)
		}
		if !bytes.Equal(encode(t, target), before) {
			t.Fatalf("%s: a failed restore changed the store", name)
		}
	}
	check("empty", nil)
	check("truncated", data[:len(data)/2])
	check("without checksum", data[:len(data)-4])
	check("trailing garbage", append(append([]byte{}, data...), 0))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		bad := append([]byte{}, data...)
		bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		check(fmt.Sprintf("flipped byte %d", i), bad)
	}
	v2 := append([]byte{}, data...)
	v2[len(snapshotMagic)] = 2
	err := target.Restore(bytes.NewReader(v2))
	wantErr(t, err, ErrSnapshotVersion)
}

func TestRestoreKeepsWatchesGoing(t *testing.T) {
	src := New(Config{})
	for i := range 5 {
		mustPut(t, src, "k", fmt.Sprint(i), 0) // 2..6
	}
	data := encode(t, src)

	dst := New(Config{})
	mustPut(t, dst, "k", "0", 0) // 2, as in src
	ws := dst.NewWatchStream()
	defer ws.Close()
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k")})
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// The watcher had seen everything up to 2; it is sent 3..6 from the
	// restored history, then live events.
	mustPut(t, dst, "k", "5", 0) // 7
	wantEvents(t, events(drain(t, ws)), "PUT k=1@3", "PUT k=2@4", "PUT k=3@5", "PUT k=4@6", "PUT k=5@7")

	if err := src.Compact(6); err != nil {
		t.Fatal(err)
	}
	ws2 := dst.NewWatchStream()
	defer ws2.Close()
	mustWatch(t, ws2, &pb.WatchCreateRequest{Key: b("k"), StartRevision: 2})
	if err := dst.Restore(bytes.NewReader(encode(t, src))); err != nil {
		t.Fatal(err)
	}
	rs := drain(t, ws2)
	if len(rs) != 1 || !rs[0].Canceled || rs[0].CompactRevision != 6 {
		t.Fatalf("a watcher behind the restored compaction must be cancelled: %+v", rs)
	}
}
