package coord

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// A keep-alive that arrives after the deadline passed must not resurrect
// the lease: the revoke is already under way (or will be on the next tick).
func TestRenewRefusesExpiredLease(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLessor(nil)
	l.now = func() time.Time { return now }
	l.granted(7, 5)
	l.promote()

	now = now.Add(4 * time.Second)
	if ttl, err := l.renew(7); err != nil || ttl != 5 {
		t.Fatalf("renew before the deadline = %d, %v; want 5, nil", ttl, err)
	}
	now = now.Add(5*time.Second + time.Millisecond)
	if got := l.expired(); len(got) != 1 || got[0] != 7 {
		t.Fatalf("expired = %v, want [7]", got)
	}
	if ttl, err := l.renew(7); err != nil || ttl != 0 {
		t.Fatalf("renew after the deadline = %d, %v; want 0 (gone), nil", ttl, err)
	}
	if got := l.expired(); len(got) != 1 {
		t.Fatalf("the refused renew moved the deadline: expired = %v", got)
	}
	l.demote()
	if _, err := l.renew(7); err != raft.ErrNotLeader {
		t.Fatalf("renew on a follower: err = %v, want ErrNotLeader", err)
	}
}

type bufSink struct {
	bytes.Buffer
	cancelled bool
}

func (b *bufSink) ID() string    { return "test" }
func (b *bufSink) Cancel() error { b.cancelled = true; return nil }
func (b *bufSink) Close() error  { return nil }

// A snapshot carries the applied index: restoring it releases readers that
// wait for an index the snapshot covers, and the index never goes back.
func TestSnapshotCarriesAppliedIndex(t *testing.T) {
	src := newFSM(kvstore.New(kvstore.Config{}), 0, nil)
	put, err := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	src.ApplyBatch([]*raft.Log{{Index: 41, Type: raft.LogCommand, Data: put}, {Index: 42, Type: raft.LogNoop}})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil || sink.cancelled {
		t.Fatalf("persist: %v (cancelled %v)", err, sink.cancelled)
	}

	dst := newFSM(kvstore.New(kvstore.Config{}), 0, nil)
	wait := dst.waitApplied(42)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	default:
		t.Fatal("a reader waiting for index 42 was not released by a snapshot at 42")
	}
	if got := dst.appliedIndex(); got != 42 {
		t.Fatalf("applied after restore = %d, want 42", got)
	}
	dst.setApplied(10) // Start's late call with an older snapshot index
	if got := dst.appliedIndex(); got != 42 {
		t.Fatalf("applied went back to %d", got)
	}
	if dst.store.Rev() != src.store.Rev() {
		t.Fatalf("restored rev %d, want %d", dst.store.Rev(), src.store.Rev())
	}

	// A snapshot in the store's format without the index still restores.
	old := newFSM(kvstore.New(kvstore.Config{}), 0, nil)
	var plain bytes.Buffer
	if _, err := src.store.Snapshot().WriteTo(&plain); err != nil {
		t.Fatal(err)
	}
	if err := old.Restore(io.NopCloser(&plain)); err != nil {
		t.Fatalf("restore of an index-less snapshot: %v", err)
	}
	if old.store.Rev() != src.store.Rev() {
		t.Fatalf("index-less restore rev %d, want %d", old.store.Rev(), src.store.Rev())
	}
}
