package election_test

import (
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election/electiontest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestObserveResync: an observer cut off from the cluster while the leader
// changes and the history is compacted finds its watch compacted when it
// is back, reads the state again, and goes on from the new leader, never
// back to the old one.
func TestObserveResync(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := electiontest.Ctx(t, 30*time.Second)
	p := coordtest.NewProxy(t, m.Endpoint())
	ocli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Addr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ocli.Close() })

	a := electiontest.NewCandidate(t, cli, "resync", 10)
	la, err := a.Election.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	o := electiontest.Observe(t, ctx, ocli, "resync")
	if ev := o.Next("a elected"); ev.Leader.Token != la.Token {
		t.Fatalf("event %+v, want a (token %d)", ev, la.Token)
	}

	p.Cut(true)
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	b := electiontest.NewCandidate(t, cli, "resync", 10)
	lb, err := b.Election.Campaign(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Proclaim(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	p.Cut(false)

	// The events in between are compacted away: the observer can only
	// have read the state after them.
	if ev := o.Next("after the partition"); ev.Leader.Token != lb.Token || ev.Leader.Value != "b2" || ev.Revision < resp.Header.Revision {
		t.Fatalf("event %+v, want b2 (token %d) at revision %d or later", ev, lb.Token, resp.Header.Revision)
	}
	if err := lb.Proclaim(ctx, "b3"); err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("b proclaims again"); ev.Leader.Value != "b3" {
		t.Fatalf("event %+v, want b3", ev)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
