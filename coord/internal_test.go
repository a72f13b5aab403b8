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

// A commit announcement names the leader's entry at the commit index as
// the previous entry, so that only a follower holding the leader's log up
// to it commits; it says no more than the leader has on disk, and only in
// the term whose header the transport saw.
func TestCommitAnnouncement(t *testing.T) {
	logs := raft.NewInmemStore()
	for i := uint64(1); i <= 10; i++ {
		term := uint64(1)
		if i > 5 {
			term = 2
		}
		if err := logs.StoreLog(&raft.Log{Index: i, Term: term, Type: raft.LogCommand}); err != nil {
			t.Fatal(err)
		}
	}
	w := &syncedCommitTransport{synced: func() uint64 { return 7 }}
	if _, _, err := announcement(w, logs, 9, 2); err == nil {
		t.Fatal("an announcement before the leader sent anything")
	}
	sent := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("m0"), Addr: []byte("127.0.0.1:1")},
		Term:      2, Leader: []byte("127.0.0.1:1"), PrevLogEntry: 9, PrevLogTerm: 2, LeaderCommitIndex: 9,
	}
	w.sending(sent)
	if sent.LeaderCommitIndex != 7 {
		t.Fatalf("raft's append carries commit %d, leader has 7 on disk", sent.LeaderCommitIndex)
	}
	for _, tc := range []struct{ commit, want, prevTerm uint64 }{{9, 7, 2}, {4, 4, 1}} {
		c, req, err := announcement(w, logs, tc.commit, 2)
		if err != nil {
			t.Fatal(err)
		}
		if c != tc.want || req.PrevLogEntry != tc.want || req.LeaderCommitIndex != tc.want || req.PrevLogTerm != tc.prevTerm ||
			req.Term != 2 || len(req.Entries) != 0 || string(req.ID) != "m0" || string(req.Addr) != "127.0.0.1:1" || string(req.Leader) != "127.0.0.1:1" {
			t.Fatalf("commit %d: announced %d in %+v; want %d, previous term %d", tc.commit, c, req, tc.want, tc.prevTerm)
		}
	}
	if _, _, err := announcement(w, logs, 9, 3); err == nil {
		t.Fatal("an announcement in term 3 with the header of term 2")
	}
	w.sending(&raft.AppendEntriesRequest{RPCHeader: sent.RPCHeader, Term: 3, Leader: sent.Leader})
	if _, req, err := announcement(w, logs, 9, 3); err != nil || req.Term != 3 {
		t.Fatalf("term 3 after an append in it: %+v, %v", req, err)
	}
	if _, _, err := announcement(w, logs, 20, 3); err != nil {
		t.Fatal(err) // capped at 7, which the log has
	}
	w.synced = func() uint64 { return 12 }
	if _, _, err := announcement(w, logs, 12, 3); err == nil {
		t.Fatal("an announcement of an entry missing from the leader's log")
	}
}

// recordingPipeline is an AppendPipeline that records what is sent on it.
type recordingPipeline struct {
	raft.AppendPipeline
	sent   []*raft.AppendEntriesRequest
	closed bool
}

func (p *recordingPipeline) AppendEntries(args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.sent = append(p.sent, args)
	return nil, nil
}

func (p *recordingPipeline) Close() error { p.closed = true; return nil }

// An announcement goes on a follower's pipeline only behind the entry it
// names; one made before that entry went out follows the entry, unless
// raft's append of it carries the commit index already.
func TestAnnouncementFollowsItsEntry(t *testing.T) {
	w := &syncedCommitTransport{synced: func() uint64 { return 100 }}
	rec := &recordingPipeline{}
	p := &syncedCommitPipeline{AppendPipeline: rec, t: w, id: "f1"}
	w.pipes.Store(raft.ServerID("f1"), p)
	entries := func(from, to uint64) []*raft.Log {
		var l []*raft.Log
		for i := from; i <= to; i++ {
			l = append(l, &raft.Log{Index: i, Term: 2})
		}
		return l
	}
	ann := func(c uint64) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: c, PrevLogTerm: 2, LeaderCommitIndex: c}
	}
	sentLast := func() *raft.AppendEntriesRequest { return rec.sent[len(rec.sent)-1] }

	p.AppendEntries(&raft.AppendEntriesRequest{Term: 2, Entries: entries(1, 5), LeaderCommitIndex: 4}, nil)
	if !w.announce("f1", ann(5)) || len(rec.sent) != 2 || sentLast().PrevLogEntry != 5 || len(sentLast().Entries) != 0 {
		t.Fatalf("announcement of a sent entry: %d requests, last %+v", len(rec.sent), sentLast())
	}
	if w.announce("f2", ann(5)) {
		t.Fatal("announced to a follower without a pipeline")
	}

	// Entry 7 has not gone out: the announcement waits for it.
	if !w.announce("f1", ann(7)) || len(rec.sent) != 2 {
		t.Fatalf("announcement of an entry not sent yet went out: %d requests", len(rec.sent))
	}
	p.AppendEntries(&raft.AppendEntriesRequest{Term: 2, Entries: entries(6, 6), LeaderCommitIndex: 5}, nil)
	if len(rec.sent) != 3 {
		t.Fatalf("the announcement of 7 went out behind entry 6: %d requests", len(rec.sent))
	}
	p.AppendEntries(&raft.AppendEntriesRequest{Term: 2, Entries: entries(7, 7), LeaderCommitIndex: 6}, nil)
	if len(rec.sent) != 5 || sentLast().PrevLogEntry != 7 || sentLast().LeaderCommitIndex != 7 || len(sentLast().Entries) != 0 {
		t.Fatalf("the announcement of 7 did not follow entry 7: %d requests, last %+v", len(rec.sent), sentLast())
	}

	// raft's append of entry 9 carries commit 9 itself: nothing follows it.
	w.announce("f1", ann(9))
	p.AppendEntries(&raft.AppendEntriesRequest{Term: 2, Entries: entries(8, 9), LeaderCommitIndex: 9}, nil)
	if len(rec.sent) != 6 {
		t.Fatalf("an announcement followed an append that carried it: %d requests", len(rec.sent))
	}

	p.Close()
	if !rec.closed || w.announce("f1", ann(9)) {
		t.Fatal("a closed pipeline still takes announcements")
	}
}
