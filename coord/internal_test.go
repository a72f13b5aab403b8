package coord

import (
	"bytes"
	"fmt"
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

// A batch large enough to be decoded on a second goroutine applies exactly
// what the same entries applied one by one do, in the same order, with the
// same result for each entry, an undecodable one included.
func TestApplyBatchPipelinedDecode(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 1024)
	var logs []*raft.Log
	for i := range 400 { // 400 KiB of commands: above pipelineBytes
		put, err := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i%37), Value: value, PrevKv: true}})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: put})
		switch i % 50 {
		case 7:
			logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogNoop})
		case 13:
			logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: []byte{0xff, 0xff}})
		}
	}
	size := 0
	for _, l := range logs {
		size += len(l.Data)
	}
	if size < pipelineBytes {
		t.Fatalf("test batch holds %d bytes, not above pipelineBytes %d", size, pipelineBytes)
	}

	batched := newFSM(kvstore.New(kvstore.Config{}), 0, nil)
	got := batched.ApplyBatch(logs)
	single := newFSM(kvstore.New(kvstore.Config{}), 0, nil)
	for i, l := range logs {
		want := single.Apply(l)
		if !sameResult(got[i], want) {
			t.Fatalf("entry %d (%v): batched result %v, one by one %v", l.Index, l.Type, got[i], want)
		}
	}
	if batched.store.Rev() != single.store.Rev() || batched.appliedIndex() != uint64(len(logs)) {
		t.Fatalf("batched rev %d applied %d; one by one rev %d", batched.store.Rev(), batched.appliedIndex(), single.store.Rev())
	}
	if got[len(logs)-1] == nil {
		t.Fatal("the last command has no result")
	}
}

// sameResult reports whether two FSM results carry equal responses and
// errors.
func sameResult(a, b any) bool {
	ra, aok := a.(applyResult)
	rb, bok := b.(applyResult)
	if !aok || !bok {
		return a == nil && b == nil
	}
	if fmt.Sprint(ra.err) != fmt.Sprint(rb.err) {
		return false
	}
	if ra.resp == nil || rb.resp == nil {
		return ra.resp == nil && rb.resp == nil
	}
	return proto.Equal(ra.resp, rb.resp)
}
