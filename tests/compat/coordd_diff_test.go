package compat

import (
	"context"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// TestCoorddMatchesEtcd runs the differential against a coordd member over
// gRPC, through raft and the server's validation and error mapping, and
// then requires watches on both to deliver identical events.
func TestCoorddMatchesEtcd(t *testing.T) {
	etcd := startEtcd(t)
	m := coordtest.StartSingle(t)
	coordd := m.Client()
	defer coordd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rev, compacted := runDiff(t, grpcBackend(ctx, etcd), grpcBackend(ctx, coordd))
	start := max(compacted, 1)
	want := watchAll(t, ctx, etcd, start, rev)
	got := watchAll(t, ctx, coordd, start, rev)
	if len(got) != len(want) {
		t.Fatalf("watch from %d: coordd sent %d events, etcd %d", start, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("watch event %d:\n coordd: %v\n etcd:   %v", i, got[i], want[i])
		}
	}
	t.Logf("watch from %d to %d: %d identical events", start, rev, len(got))
}

// watchAll collects every event from start until revision end.
func watchAll(t *testing.T, ctx context.Context, cli *clientv3.Client, start, end int64) []*mvccpb.Event {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var evs []*mvccpb.Event
	for wr := range cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(start), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch: %v", err)
		}
		evs = append(evs, wr.Events...)
		if len(evs) > 0 && evs[len(evs)-1].Kv.ModRevision >= end {
			return evs
		}
	}
	t.Fatalf("watch ended after %d events, before revision %d", len(evs), end)
	return nil
}
