package kvstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func mustWatch(t *testing.T, ws *WatchStream, r *pb.WatchCreateRequest) int64 {
	t.Helper()
	id, err := ws.Watch(r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// drain reads until Next has nothing more, bounded in calls.
func drain(t *testing.T, ws *WatchStream) []WatchResponse {
	t.Helper()
	var out []WatchResponse
	for range 10_000 {
		select {
		case <-ws.Ready():
		default:
			return out
		}
		rs, err := ws.Next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	t.Fatal("stream never ran dry")
	return nil
}

func events(rs []WatchResponse) []*mvccpb.Event {
	var evs []*mvccpb.Event
	for _, r := range rs {
		evs = append(evs, r.Events...)
	}
	return evs
}

func describe(evs []*mvccpb.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s %s=%s@%d", e.Type, e.Kv.Key, e.Kv.Value, e.Kv.ModRevision)
		if e.PrevKv != nil {
			out[i] += fmt.Sprintf(" prev=%s", e.PrevKv.Value)
		}
	}
	return out
}

func wantEvents(t *testing.T, got []*mvccpb.Event, want ...string) {
	t.Helper()
	g := describe(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("events:\n got  %q\n want %q", g, want)
	}
}

func TestWatchReplayThenLive(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "k", "1", 0)    // 2
	mustPut(t, s, "other", "", 0) // 3
	mustPut(t, s, "k", "2", 0)    // 4
	ws := s.NewWatchStream()
	defer ws.Close()
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k"), StartRevision: 2, PrevKv: true})
	wantEvents(t, events(drain(t, ws)), "PUT k=1@2", "PUT k=2@4 prev=1")

	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("k")}); err != nil { // 5
		t.Fatal(err)
	}
	mustPut(t, s, "k", "3", 0) // 6
	rs := drain(t, ws)
	wantEvents(t, events(rs), "DELETE k=@5 prev=2", "PUT k=3@6")
	if len(rs) != 2 || rs[0].Revision != 5 || rs[1].Revision != 6 {
		t.Fatalf("one response per revision, with its revision: %+v", rs)
	}
}

func TestWatchStartRevisions(t *testing.T) {
	s := New(Config{})
	mustPut(t, s, "k", "1", 0) // 2
	ws := s.NewWatchStream()
	defer ws.Close()
	now := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k")})
	future := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k"), StartRevision: 4})
	if len(drain(t, ws)) != 0 {
		t.Fatal("start revision 0 must not replay")
	}
	mustPut(t, s, "k", "2", 0) // 3
	mustPut(t, s, "k", "3", 0) // 4
	got := map[int64][]string{}
	for _, r := range drain(t, ws) {
		got[r.WatchID] = append(got[r.WatchID], describe(r.Events)...)
	}
	if fmt.Sprint(got[now]) != "[PUT k=2@3 PUT k=3@4]" || fmt.Sprint(got[future]) != "[PUT k=3@4]" {
		t.Fatalf("got %v", got)
	}
}

func TestWatchTxnRevisionTogether(t *testing.T) {
	s := New(Config{})
	ws := s.NewWatchStream()
	defer ws.Close()
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("a"), RangeEnd: b("z")})
	if _, err := s.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("c", "1"), putOp("a", "1"), putOp("b", "1")}}); err != nil {
		t.Fatal(err)
	}
	rs := drain(t, ws)
	if len(rs) != 1 {
		t.Fatalf("a txn is one response, got %d", len(rs))
	}
	wantEvents(t, rs[0].Events, "PUT c=1@2", "PUT a=1@2", "PUT b=1@2")
}

func TestWatchRangesAndFilters(t *testing.T) {
	s := New(Config{})
	ws := s.NewWatchStream()
	defer ws.Close()
	prefix := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("p/"), RangeEnd: prefixEnd("p/")})
	fromKey := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("q"), RangeEnd: []byte{0}})
	noPut := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("p/1"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	noDel := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("p/1"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	mustPut(t, s, "p/1", "x", 0) // 2
	mustPut(t, s, "p", "x", 0)   // 3: outside the prefix
	mustPut(t, s, "zz", "x", 0)  // 4
	if _, err := s.DeleteRange(&pb.DeleteRangeRequest{Key: b("p/1")}); err != nil {
		t.Fatal(err)
	}
	got := map[int64][]string{}
	for _, r := range drain(t, ws) {
		got[r.WatchID] = append(got[r.WatchID], describe(r.Events)...)
	}
	want := map[int64]string{
		prefix:  "[PUT p/1=x@2 DELETE p/1=@5]",
		fromKey: "[PUT zz=x@4]",
		noPut:   "[DELETE p/1=@5]",
		noDel:   "[PUT p/1=x@2]",
	}
	for id, w := range want {
		if fmt.Sprint(got[id]) != w {
			t.Errorf("watch %d: %q, want %s", id, got[id], w)
		}
	}
}

func TestWatchCompacted(t *testing.T) {
	s := New(Config{WatchQueueSize: 1})
	for i := range 5 {
		mustPut(t, s, "k", fmt.Sprint(i), 0) // 2..6
	}
	if err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	ws := s.NewWatchStream()
	defer ws.Close()
	old := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k"), StartRevision: 3})
	at := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k"), StartRevision: 4})
	rs := drain(t, ws)
	var cancelled, replayed bool
	for _, r := range rs {
		switch r.WatchID {
		case old:
			cancelled = r.Canceled && r.CompactRevision == 4 && len(r.Events) == 0
		case at:
			replayed = len(r.Events) == 3 && r.Events[0].Kv.ModRevision == 4
		}
	}
	if !cancelled || !replayed {
		t.Fatalf("compacted start must cancel with the compact revision; start at it must replay: %+v", rs)
	}
	// A cancelled watch is gone: no further events.
	mustPut(t, s, "k", "x", 0) // 7
	for _, r := range drain(t, ws) {
		if r.WatchID == old {
			t.Fatalf("event after cancellation: %+v", r)
		}
	}

	// A watcher that falls behind and is overtaken by a compaction is
	// cancelled too, never silently advanced.
	lag := s.NewWatchStream()
	defer lag.Close()
	id := mustWatch(t, lag, &pb.WatchCreateRequest{Key: b("k")})
	mustPut(t, s, "k", "a", 0) // 8: queued
	mustPut(t, s, "k", "b", 0) // 9: queue full, watcher unsynced at 9
	mustPut(t, s, "k", "c", 0) // 10
	if err := s.Compact(10); err != nil {
		t.Fatal(err)
	}
	rs = drain(t, lag)
	last := rs[len(rs)-1]
	if len(rs) != 2 || rs[0].Events[0].Kv.ModRevision != 8 || !last.Canceled || last.CompactRevision != 10 || last.WatchID != id {
		t.Fatalf("lagging watcher: %+v", rs)
	}
}

// TestWatchSlowConsumer writes many events while a consumer reads slowly
// through a tiny queue, concurrently. The writer never waits for it, and the
// consumer still sees every event exactly once, in order.
func TestWatchSlowConsumer(t *testing.T) {
	const n = 5000
	s := New(Config{WatchQueueSize: 2, WatchCatchUpEvents: 7})
	ws := s.NewWatchStream()
	defer ws.Close()
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k/"), RangeEnd: prefixEnd("k/"), PrevKv: true})
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k/3")})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			key := fmt.Sprintf("k/%d", i%10)
			if _, err := s.Put(&pb.PutRequest{Key: b(key), Value: b(fmt.Sprint(i))}); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	seen := map[int64][]*mvccpb.Event{}
	deadline := time.After(30 * time.Second)
	for total := 0; total < n+n/10; {
		select {
		case <-ws.Ready():
		case <-deadline:
			t.Fatalf("only %d of %d events arrived", total, n+n/10)
		}
		rs, err := ws.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			seen[r.WatchID] = append(seen[r.WatchID], r.Events...)
			total += len(r.Events)
		}
	}
	wg.Wait()
	for id, evs := range seen {
		for i := 1; i < len(evs); i++ {
			if evs[i].Kv.ModRevision <= evs[i-1].Kv.ModRevision {
				t.Fatalf("watch %d: event %d out of order or repeated", id, i)
			}
		}
	}
	all := seen[0]
	if len(all) != n {
		t.Fatalf("range watcher saw %d events, want %d", len(all), n)
	}
	for i, ev := range all {
		if string(ev.Kv.Value) != fmt.Sprint(i) || ev.Kv.ModRevision != int64(i+2) {
			t.Fatalf("event %d is %v", i, ev)
		}
		if i >= 10 && string(ev.PrevKv.GetValue()) != fmt.Sprint(i-10) {
			t.Fatalf("event %d prev_kv is %v", i, ev.PrevKv)
		}
	}
	if len(seen[1]) != n/10 {
		t.Fatalf("single-key watcher saw %d events, want %d", len(seen[1]), n/10)
	}
}

func TestWatchProgress(t *testing.T) {
	s := New(Config{WatchQueueSize: 1, WatchCatchUpEvents: 1})
	ws := s.NewWatchStream()
	defer ws.Close()
	mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k")})
	ws.RequestProgress()
	rs := drain(t, ws)
	if len(rs) != 1 || rs[0].WatchID != ProgressWatchID || rs[0].Revision != 1 {
		t.Fatalf("progress on an idle stream: %+v", rs)
	}
	for range 5 {
		mustPut(t, s, "k", "v", 0) // 2..6; the watcher falls behind at 3
	}
	ws.RequestProgress()
	rs, _ = ws.Next()
	for _, r := range rs {
		if r.WatchID == ProgressWatchID {
			t.Fatalf("progress must wait until the watcher caught up: %+v", rs)
		}
	}
	rs = append(rs, drain(t, ws)...)
	last := rs[len(rs)-1]
	if last.WatchID != ProgressWatchID || last.Revision != 6 || len(events(rs)) != 5 {
		t.Fatalf("after catching up: %+v", rs)
	}
}

func TestWatchStreamLifecycle(t *testing.T) {
	s := New(Config{})
	ws := s.NewWatchStream()
	id := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k"), WatchId: 5})
	if id != 5 {
		t.Fatalf("requested ID: %d", id)
	}
	if auto := mustWatch(t, ws, &pb.WatchCreateRequest{Key: b("k")}); auto != 0 {
		t.Fatalf("first automatic ID is 0 as in etcd, got %d", auto)
	}
	_, err := ws.Watch(&pb.WatchCreateRequest{Key: b("k"), WatchId: 5})
	wantErr(t, err, ErrWatchIDExists)
	_, err = ws.Watch(&pb.WatchCreateRequest{Key: b("b"), RangeEnd: b("a")})
	wantErr(t, err, ErrEmptyWatcherRange)
	_, err = ws.Watch(&pb.WatchCreateRequest{Key: b("k"), StartRevision: -1})
	wantErr(t, err, ErrCompacted)

	mustPut(t, s, "k", "v", 0)
	if !ws.Cancel(5) || ws.Cancel(5) {
		t.Fatal("cancel must succeed once")
	}
	for _, r := range drain(t, ws) {
		if r.WatchID == 5 {
			t.Fatal("queued response of a cancelled watch was delivered")
		}
	}
	ws.Close()
	_, err = ws.Next()
	wantErr(t, err, ErrWatchStreamClosed)
	_, err = ws.Watch(&pb.WatchCreateRequest{Key: b("k")})
	wantErr(t, err, ErrWatchStreamClosed)
	mustPut(t, s, "k", "v", 0) // must not reach the closed stream or block
	if s.hub.n != 0 {
		t.Fatalf("closed stream left %d watchers registered", s.hub.n)
	}
}
