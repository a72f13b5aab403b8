package compat

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coordhq/coord/kvstore"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

var (
	diffOps  = flag.Int("ops", 3000, "random operations per differential run")
	diffSeed = flag.Uint64("seed", 0, "seed of the differential run (0: random)")
)

// etcdErr is the etcd error kvstore's sentinel stands for; the server maps
// them the same way.
var etcdErr = map[error]error{
	kvstore.ErrCompacted:         rpctypes.ErrGRPCCompacted,
	kvstore.ErrFutureRev:         rpctypes.ErrGRPCFutureRev,
	kvstore.ErrEmptyKey:          rpctypes.ErrGRPCEmptyKey,
	kvstore.ErrKeyNotFound:       rpctypes.ErrGRPCKeyNotFound,
	kvstore.ErrValueProvided:     rpctypes.ErrGRPCValueProvided,
	kvstore.ErrLeaseProvided:     rpctypes.ErrGRPCLeaseProvided,
	kvstore.ErrTooManyOps:        rpctypes.ErrGRPCTooManyOps,
	kvstore.ErrDuplicateKey:      rpctypes.ErrGRPCDuplicateKey,
	kvstore.ErrInvalidSortOption: rpctypes.ErrGRPCInvalidSortOption,
	kvstore.ErrLeaseNotFound:     rpctypes.ErrGRPCLeaseNotFound,
	kvstore.ErrLeaseExists:       rpctypes.ErrGRPCLeaseExist,
	kvstore.ErrLeaseTTLTooLarge:  rpctypes.ErrGRPCLeaseTTLTooLarge,
}

func describeErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	for k, v := range etcdErr {
		if errors.Is(err, k) {
			return rpctypes.ErrorDesc(v)
		}
	}
	return rpctypes.ErrorDesc(err)
}

// stripHeader keeps of etcd's header only what kvstore knows: the revision.
func stripHeader(h *pb.ResponseHeader) {
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
}

// TestKVStoreMatchesEtcd sends the same random operations to an embedded
// etcd and to a kvstore and requires identical responses: revisions, kvs,
// counts, more, prev_kvs, txn results and errors. At the end a watch from
// the start of the retained history must deliver identical events.
func TestKVStoreMatchesEtcd(t *testing.T) {
	cli := startEtcd(t)
	kv := pb.NewKVClient(cli.ActiveConnection())
	lc := pb.NewLeaseClient(cli.ActiveConnection())
	st := kvstore.New(kvstore.Config{MaxTxnOps: 128})

	seed := *diffSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	g := &gen{r: rand.New(rand.NewPCG(seed, 1))}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	stats := map[string]int{}
	for step := range *diffOps {
		var (
			what       string
			got, want  proto.Message
			gerr, werr error
		)
		op := g.r.IntN(100)
		if op >= 85 && op < 88 && step >= *diffOps*4/5 {
			op = 50 // no compaction at the end: the final watch gets a long history
		}
		switch {
		case op < 25:
			r := g.put()
			what = fmt.Sprintf("put %v", r)
			resp, err := kv.Put(ctx, r)
			want, werr = resp, err
			got, gerr = st.Put(r)
			if err == nil {
				stripHeader(resp.Header)
			}
		case op < 35:
			r := g.del()
			what = fmt.Sprintf("delete %v", r)
			resp, err := kv.DeleteRange(ctx, r)
			want, werr = resp, err
			got, gerr = st.DeleteRange(r)
			if err == nil {
				stripHeader(resp.Header)
			}
		case op < 60:
			r := g.rangeReq(st.Rev(), st.CompactRev())
			what = fmt.Sprintf("range %v", r)
			resp, err := kv.Range(ctx, r)
			want, werr = resp, err
			got, gerr = st.Range(r)
			if err == nil {
				stripHeader(resp.Header)
			}
		case op < 85:
			r := g.txn(st.Rev(), st.CompactRev(), 1)
			what = fmt.Sprintf("txn %v", r)
			resp, err := kv.Txn(ctx, r)
			want, werr = resp, err
			got, gerr = st.Txn(r)
			if err == nil {
				stripHeader(resp.Header)
			}
		case op < 88:
			rev := max(st.CompactRev()-1, 0) + g.r.Int64N(st.Rev()-st.CompactRev()+3)
			what = fmt.Sprintf("compact %d", rev)
			_, werr = kv.Compact(ctx, &pb.CompactionRequest{Revision: rev})
			gerr = st.Compact(rev)
		case op < 94:
			id, ttl := int64(1+g.r.IntN(5)), int64(3600+g.r.IntN(100))
			what = fmt.Sprintf("grant %d", id)
			resp, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
			werr = err
			l, err := st.LeaseGrant(id, ttl)
			gerr = err
			if werr == nil && gerr == nil && (resp.ID != l.ID || resp.TTL != l.TTL) {
				t.Fatalf("step %d %s: etcd granted %d/%d, kvstore %d/%d", step, what, resp.ID, resp.TTL, l.ID, l.TTL)
			}
		default:
			id := int64(1 + g.r.IntN(5))
			what = fmt.Sprintf("revoke %d", id)
			resp, err := lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
			werr = err
			_, hdr, err := st.LeaseRevoke(id)
			gerr = err
			if werr == nil && gerr == nil && resp.Header.Revision != hdr.Revision {
				t.Fatalf("step %d %s: etcd at revision %d, kvstore %d", step, what, resp.Header.Revision, hdr.Revision)
			}
		}
		if describeErr(gerr) != describeErr(werr) {
			t.Fatalf("step %d %s:\n kvstore error: %v\n etcd error:    %v", step, what, describeErr(gerr), describeErr(werr))
		}
		if werr == nil && want != nil && !proto.Equal(got, want) {
			t.Fatalf("step %d %s:\n kvstore: %v\n etcd:    %v", step, what, got, want)
		}
		outcome := "ok"
		if werr != nil {
			outcome = describeErr(werr)
		}
		stats[fmt.Sprintf("%.7s %s", what, outcome)]++
	}
	t.Logf("revision %d, compacted %d; outcomes: %v", st.Rev(), st.CompactRev(), stats)
	compareWatch(t, ctx, cli, st)
}

// compareWatch watches every key from the oldest revision both still hold
// and requires the same events, prev_kv included.
func compareWatch(t *testing.T, ctx context.Context, cli *clientv3.Client, st *kvstore.Store) {
	start := max(st.CompactRev(), 1)
	end := st.Rev()
	var want []*mvccpb.Event
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for wr := range cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(start), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			t.Fatalf("etcd watch: %v", err)
		}
		want = append(want, wr.Events...)
		if len(want) > 0 && want[len(want)-1].Kv.ModRevision >= end {
			break
		}
	}
	ws := st.NewWatchStream()
	defer ws.Close()
	if _, err := ws.Watch(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: start, PrevKv: true}); err != nil {
		t.Fatal(err)
	}
	var got []*mvccpb.Event
	for range 100_000 {
		select {
		case <-ws.Ready():
		default:
		}
		rs, err := ws.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.Events...)
		}
		if len(rs) == 0 {
			break
		}
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("kvstore: %v", e)
		}
		for _, e := range want {
			t.Logf("etcd:    %v", e)
		}
		t.Fatalf("watch from %d: kvstore sent %d events, etcd %d", start, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("watch event %d:\n kvstore: %v\n etcd:    %v", i, got[i], want[i])
		}
	}
	t.Logf("watch from %d to %d: %d identical events", start, end, len(got))
}
