package coord_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord"
	"github.com/coordhq/coord/coord/coordtest"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; the probe
	// ends on its own within the probe interval.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// onEachTopology runs a test against a single member, and against a
// follower of a three-member cluster, where writes, linearizable reads and
// lease calls are forwarded to the leader.
func onEachTopology(t *testing.T, test func(t *testing.T, m *coordtest.Member)) {
	t.Run("single", func(t *testing.T) { test(t, coordtest.StartSingle(t)) })
	t.Run("follower", func(t *testing.T) { test(t, coordtest.StartCluster(t, 3).Follower()) })
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func isErr(err, want error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(want)
}

func TestKVThroughClient(t *testing.T) { onEachTopology(t, testKVThroughClient) }

func testKVThroughClient(t *testing.T, m *coordtest.Member) {
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)

	put, err := c.Put(ctx, "k", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision != 2 || put.Header.MemberId == 0 || put.Header.ClusterId == 0 || put.Header.RaftTerm == 0 {
		t.Fatalf("put header: %v", put.Header)
	}
	if _, err := c.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	get, err := c.Get(ctx, "k")
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "v2" || get.Kvs[0].Version != 2 || get.Header.Revision != 3 {
		t.Fatalf("get: %v %v", get, err)
	}
	old, err := c.Get(ctx, "k", clientv3.WithRev(2))
	if err != nil || string(old.Kvs[0].Value) != "v1" {
		t.Fatalf("get at 2: %v %v", old, err)
	}
	ser, err := c.Get(ctx, "k", clientv3.WithSerializable())
	if err != nil || string(ser.Kvs[0].Value) != "v2" {
		t.Fatalf("serializable get: %v %v", ser, err)
	}
	txn, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Value("k"), "=", "v2")).
		Then(clientv3.OpPut("k", "v3"), clientv3.OpGet("k")).Else(clientv3.OpPut("else", "x")).Commit()
	if err != nil || !txn.Succeeded || string(txn.Responses[1].GetResponseRange().Kvs[0].Value) != "v3" {
		t.Fatalf("txn: %v %v", txn, err)
	}
	del, err := c.Delete(ctx, "k", clientv3.WithPrevKV())
	if err != nil || del.Deleted != 1 || string(del.PrevKvs[0].Value) != "v3" {
		t.Fatalf("delete: %v %v", del, err)
	}
	if _, err := c.Compact(ctx, del.Header.Revision); err != nil {
		t.Fatal(err)
	}

	// Bad input answers etcd's errors and the server keeps serving.
	_, err = c.Get(ctx, "k", clientv3.WithRev(2))
	if !isErr(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("compacted read: %v", err)
	}
	_, err = c.Get(ctx, "k", clientv3.WithRev(1000))
	if !isErr(err, rpctypes.ErrGRPCFutureRev) {
		t.Fatalf("future read: %v", err)
	}
	_, err = c.Put(ctx, "big", strings.Repeat("x", 1600*1024))
	if !isErr(err, rpctypes.ErrGRPCRequestTooLarge) {
		t.Fatalf("oversized put: %v", err)
	}
	ops := make([]clientv3.Op, 129)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprint("op", i), "")
	}
	_, err = c.Txn(ctx).Then(ops...).Commit()
	if !isErr(err, rpctypes.ErrGRPCTooManyOps) {
		t.Fatalf("too many ops: %v", err)
	}
	_, err = c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
	if !isErr(err, rpctypes.ErrGRPCDuplicateKey) {
		t.Fatalf("duplicate key: %v", err)
	}
	_, err = c.Put(ctx, "x", "y", clientv3.WithLease(12345))
	if !isErr(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	_, err = c.Compact(ctx, 1)
	if !isErr(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("compact below compacted: %v", err)
	}
	if _, err := c.Put(ctx, "still", "serving"); err != nil {
		t.Fatalf("server stopped serving after bad input: %v", err)
	}
}

func TestWatchThroughClient(t *testing.T) { onEachTopology(t, testWatchThroughClient) }

func testWatchThroughClient(t *testing.T, m *coordtest.Member) {
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Put(ctx, "w/a", "1"); err != nil { // 2
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := c.Watch(wctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
	if _, err := c.Put(ctx, "w/a", "2"); err != nil { // 3
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "w/a"); err != nil { // 4
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				s := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
				if ev.PrevKv != nil {
					s += " prev=" + string(ev.PrevKv.Value)
				}
				got = append(got, s)
			}
		case <-ctx.Done():
			t.Fatalf("events so far: %q", got)
		}
	}
	want := []string{"PUT w/a=1@2", "PUT w/a=2@3 prev=1", "DELETE w/a=@4 prev=2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q want %q", got, want)
	}

	// Progress: the current revision, on request.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	pch := c.Watch(pctx, "nothing", clientv3.WithProgressNotify())
	if err := c.RequestProgress(pctx); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-pch:
		if !wr.IsProgressNotify() || wr.Header.Revision != 4 {
			t.Fatalf("progress: %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}

	// A watch from a compacted revision is cancelled with it.
	if _, err := c.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	cch := c.Watch(ctx, "w/a", clientv3.WithRev(2))
	select {
	case wr := <-cch:
		if wr.CompactRevision != 4 || !wr.Canceled {
			t.Fatalf("compacted watch: %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("no cancellation")
	}
}

func TestLeasesThroughClient(t *testing.T) { onEachTopology(t, testLeasesThroughClient) }

func testLeasesThroughClient(t *testing.T, m *coordtest.Member) {
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 30*time.Second)

	short, err := c.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if short.TTL != 1 { // ceil(1.5 × 500ms) = 1s with coordtest's election timeout
		t.Fatalf("granted TTL %d", short.TTL)
	}
	if _, err := c.Put(ctx, "l/short", "x", clientv3.WithLease(short.ID)); err != nil {
		t.Fatal(err)
	}
	kept, err := c.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "l/kept", "x", clientv3.WithLease(kept.ID)); err != nil {
		t.Fatal(err)
	}
	ka, err := c.KeepAlive(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := c.TimeToLive(ctx, kept.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 1 || len(ttl.Keys) != 1 {
		t.Fatalf("time to live: %v %v", ttl, err)
	}

	// The unrenewed lease expires and its key is deleted through the log;
	// the renewed one stays.
	wch := c.Watch(ctx, "l/", clientv3.WithPrefix())
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE || string(wr.Events[0].Kv.Key) != "l/short" {
			t.Fatalf("expiry: %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("lease never expired")
	}
	for range 3 { // a few renewals prove the kept lease outlives its TTL
		select {
		case <-ka:
		case <-ctx.Done():
			t.Fatal("keep-alive stopped")
		}
	}
	if g, err := c.Get(ctx, "l/kept"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("kept key: %v %v", g, err)
	}
	if gone, err := c.TimeToLive(ctx, short.ID); err != nil || gone.TTL != -1 {
		t.Fatalf("expired lease: %v %v", gone, err)
	}
	if _, err := c.Revoke(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.Get(ctx, "l/", clientv3.WithPrefix()); len(g.Kvs) != 0 {
		t.Fatalf("keys after revoke: %v", g.Kvs)
	}
}

// TestMutexExclusion runs contenders through etcd's own concurrency.Mutex:
// never two in the critical section at once.
func TestMutexExclusion(t *testing.T) { onEachTopology(t, testMutexExclusion) }

func testMutexExclusion(t *testing.T, m *coordtest.Member) {
	ctx := ctxT(t, 60*time.Second)
	const contenders, rounds = 8, 5
	var inside, entries atomic.Int32
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := m.Client()
			defer c.Close()
			sess, err := concurrency.NewSession(c, concurrency.WithTTL(5))
			if err != nil {
				t.Error(err)
				return
			}
			defer sess.Close()
			mu := concurrency.NewMutex(sess, "/lock")
			for range rounds {
				if err := mu.Lock(ctx); err != nil {
					t.Error(err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("contender %d: %d holders at once", i, n)
				}
				entries.Add(1)
				inside.Add(-1)
				if err := mu.Unlock(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if entries.Load() != contenders*rounds {
		t.Fatalf("%d entries, want %d", entries.Load(), contenders*rounds)
	}
}

// TestElectionFailover: when the leader's session dies (its lease expires,
// not released), the next candidate is elected.
func TestElectionFailover(t *testing.T) { onEachTopology(t, testElectionFailover) }

func testElectionFailover(t *testing.T, m *coordtest.Member) {
	ctx := ctxT(t, 30*time.Second)
	c1, c2 := m.Client(), m.Client()
	defer c2.Close()

	s1, err := concurrency.NewSession(c1, concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	e1 := concurrency.NewElection(s1, "/elect")
	if err := e1.Campaign(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	s2, err := concurrency.NewSession(c2, concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e2 := concurrency.NewElection(s2, "/elect")
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "second") }()

	// Kill the first leader's session: its client goes away without
	// resigning, so its lease stops being renewed and expires.
	c1.Close()
	select {
	case err := <-won:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("second candidate never elected")
	}
	leader, err := e2.Leader(ctx)
	if err != nil || string(leader.Kvs[0].Value) != "second" {
		t.Fatalf("leader: %v %v", leader, err)
	}
}

// TestRestartKeepsEverything restarts a member on its data dir: every
// acknowledged write is there, at the same revision.
func TestRestartKeepsEverything(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	m.Config.SnapshotCount = 50 // restart from a snapshot plus a log tail
	m.Config.SnapshotInterval = 20 * time.Millisecond
	m.Start()
	c := m.Client()
	ctx := ctxT(t, 30*time.Second)
	var last int64
	for i := range 120 {
		r, err := c.Put(ctx, fmt.Sprintf("r/%03d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	c.Close()
	// The member snapshots on its own once SnapshotCount entries passed.
	for i := 0; ; i++ {
		snaps, _ := filepath.Glob(filepath.Join(m.Config.DataDir, "snapshots", "*", "state.bin"))
		if len(snaps) > 0 && !strings.HasSuffix(filepath.Dir(snaps[0]), ".tmp") {
			break
		}
		if i == 500 || ctx.Err() != nil {
			t.Fatal("no snapshot after 120 writes with SnapshotCount 50")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.Restart()
	c = m.Client()
	defer c.Close()
	g, err := c.Get(ctx, "r/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Kvs) != 120 || g.Header.Revision != last {
		t.Fatalf("after restart: %d keys at revision %d, want 120 at %d", len(g.Kvs), g.Header.Revision, last)
	}
	for i, kv := range g.Kvs {
		if string(kv.Value) != fmt.Sprint(i) {
			t.Fatalf("key %s = %s", kv.Key, kv.Value)
		}
	}
}

// TestQuota: past the quota, writes fail with NOSPACE and the alarm shows;
// reads and deletes work; compaction brings writes back.
func TestQuota(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	m.Config.QuotaBytes = 64 << 10
	m.Start()
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 30*time.Second)
	val := strings.Repeat("v", 1024)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		_, err = c.Put(ctx, "q", val)
	}
	if !isErr(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("writes past the quota: %v", err)
	}
	alarms, aerr := c.AlarmList(ctx)
	if aerr != nil || len(alarms.Alarms) != 1 {
		t.Fatalf("alarm: %v %v", alarms, aerr)
	}
	g, gerr := c.Get(ctx, "q")
	if gerr != nil || len(g.Kvs) != 1 {
		t.Fatalf("read past the quota: %v", gerr)
	}
	if _, err := c.Compact(ctx, g.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "q", "small"); err != nil {
		t.Fatalf("write after compaction: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	m.Config.MetricsAddr = coordtest.FreeAddr(t)
	m.Config.EnablePprof = true
	m.Start()
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m.Config.MetricsAddr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := get("/health")
	if code != 200 || !strings.Contains(body, `"health":"true"`) {
		t.Fatalf("/health: %d %s", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("/debug/pprof/goroutine: %d %.200s", code, body)
	}
	_, body = get("/metrics")
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV"} 1`,
		`etcd_server_is_leader 1`,
		`etcd_debugging_mvcc_current_revision 2`,
		`etcd_server_apply_duration_seconds_count`,
		`etcd_server_leader_changes_seen_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestAutoCompaction: in revision mode the leader keeps compacting to the
// current revision minus the retention.
func TestAutoCompaction(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	m.Config.AutoCompactionMode = coord.CompactRevision
	m.Config.AutoCompactionRevisions = 10
	m.Config.AutoCompactionInterval = 50 * time.Millisecond
	m.Start()
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)
	for i := range 40 {
		if _, err := c.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, err := c.Get(ctx, "k", clientv3.WithRev(30))
		if isErr(err, rpctypes.ErrGRPCCompacted) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("revision 30 never compacted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Get(ctx, "k", clientv3.WithRev(31)); err != nil {
		t.Fatalf("the last 10 revisions must stay: %v", err)
	}
}

// TestWatchFragments: a catch-up response larger than a request may be is
// split into fragments for a client that asked for them, and arrives whole.
func TestWatchFragments(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	m.Config.MaxRequestBytes = 16 << 10
	m.Start()
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)
	val := strings.Repeat("f", 4<<10)
	for i := range 20 { // 80 KiB of history, five times the request limit
		if _, err := c.Put(ctx, fmt.Sprintf("f/%02d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := pb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("f/"), RangeEnd: []byte("f0"), StartRevision: 2, Fragment: true}}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	events, fragments := 0, 0
	for events < 20 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Fragment {
			fragments++
		}
		if sz := proto.Size(resp); len(resp.Events) > 1 && sz > 2*m.Config.MaxRequestBytes {
			t.Fatalf("a response of %d bytes was not split", sz)
		}
		events += len(resp.Events)
	}
	if fragments == 0 || events != 20 {
		t.Fatalf("%d events in %d fragments", events, fragments)
	}
	// clientv3 reassembles fragments into one response.
	wch := c.Watch(ctx, "f/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFragment())
	select {
	case wr := <-wch:
		if len(wr.Events) != 20 {
			t.Fatalf("reassembled %d events", len(wr.Events))
		}
	case <-ctx.Done():
		t.Fatal("no watch response")
	}
}

// TestCloseWithoutStart: a server that never started closes cleanly.
func TestCloseWithoutStart(t *testing.T) {
	s, err := coord.New(coordtest.NewMember(t, "m0").Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFailedStartLeavesNothing: a start that fails on its last listener
// closes what it opened, so the data dir can be opened again at once and
// Close afterwards is safe.
func TestFailedStartLeavesNothing(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := m.Config
	cfg.MetricsAddr = busy.Addr().String()
	s, err := coord.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("Start with a busy metrics port: err = %v, want a metrics listen error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after a failed Start: %v", err)
	}
	// The data dir (bolt file lock) and the client port are free again.
	m.Start()
	cli := m.Client()
	defer cli.Close()
	ctx := ctxT(t, 10*time.Second)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredContextIsNotProposed: a request whose deadline already passed
// is answered with DeadlineExceeded, not proposed with no timeout at all.
func TestExpiredContextIsNotProposed(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx := ctxT(t, 10*time.Second)
	before, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := m.Server.ProposePut(expired, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with an expired context: err = %v, want DeadlineExceeded", err)
	}
	after, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision {
		t.Fatalf("revision moved from %d to %d: the expired put was applied", before.Header.Revision, after.Header.Revision)
	}
}

// A data dir made before coord moved its raft log to a WAL keeps its
// BoltDB log: the member starts on it, keeps what it held, and writes no
// WAL beside it (a new WAL would hide the log entries after the last
// snapshot).
func TestBoltDBDataDirKeepsItsLog(t *testing.T) {
	m := coordtest.NewMember(t, "m0")
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(m.Config.DataDir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	m.Start()
	c := m.Client()
	defer c.Close()
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Put(ctx, "kept", "v"); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	c2 := m.Client()
	defer c2.Close()
	g, err := c2.Get(ctx, "kept")
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("after restart: %v %v", g, err)
	}
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "wal")); !os.IsNotExist(err) {
		t.Fatalf("a WAL was made beside the BoltDB log: %v", err)
	}
}

// A new data dir gets a WAL and no BoltDB file.
func TestNewDataDirUsesWAL(t *testing.T) {
	m := coordtest.StartSingle(t)
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "wal")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "raft.db")); !os.IsNotExist(err) {
		t.Fatalf("raft.db in a new data dir: %v", err)
	}
}
