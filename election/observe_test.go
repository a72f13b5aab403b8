package election_test

import (
	"context"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// observer reads an Observe channel and checks that every event is newer
// than the one before.
type observer struct {
	t    *testing.T
	ch   <-chan election.Event
	last *election.Event
	top  election.Leader
}

func observe(t *testing.T, ctx context.Context, cli *clientv3.Client, name string) *observer {
	t.Helper()
	ch, err := election.Observe(ctx, cli, name)
	if err != nil {
		t.Fatal(err)
	}
	return &observer{t: t, ch: ch}
}

func (o *observer) next(what string) election.Event {
	o.t.Helper()
	select {
	case ev, ok := <-o.ch:
		if !ok {
			o.t.Fatalf("%s: the channel closed", what)
		}
		if o.last != nil {
			newer := ev.Leader.Token > o.top.Token || (ev.Leader.Token == o.top.Token && ev.Leader.ModRevision > o.top.ModRevision)
			switch {
			case ev.Revision < o.last.Revision:
				o.t.Fatalf("%s: event %+v at a revision before %+v", what, ev, *o.last)
			case ev.NoLeader && o.last.NoLeader:
				o.t.Fatalf("%s: \"no leader\" twice: %+v", what, ev)
			case !ev.NoLeader && !newer:
				o.t.Fatalf("%s: event %+v is not newer than leader %+v", what, ev, o.top)
			}
		}
		if !ev.NoLeader {
			o.top = ev.Leader
		}
		o.last = &ev
		return ev
	case <-time.After(wait):
		o.t.Fatalf("%s: no event after %v", what, wait)
		return election.Event{}
	}
}

// until reads events until one satisfies ok.
func (o *observer) until(what string, ok func(election.Event) bool) election.Event {
	o.t.Helper()
	for range 20 {
		if ev := o.next(what); ok(ev) {
			return ev
		}
	}
	o.t.Fatalf("%s: not seen in 20 events", what)
	return election.Event{}
}

// TestObserve: an observer sees the current state, every leader, each
// proclaimed value, and "no leader" when there is none, in order; changes
// of candidates that do not lead are not events.
func TestObserve(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 30*time.Second)
	octx, stop := context.WithCancel(ctx)
	o := observe(t, octx, cli, "obs")

	if ev := o.next("initial"); !ev.NoLeader || ev.Revision == 0 {
		t.Fatalf("initial event %+v, want no leader", ev)
	}
	a := newCandidate(t, cli, "obs", 10)
	la, err := a.e.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ev := o.next("a elected"); ev.NoLeader || ev.Leader.Value != "a" || ev.Leader.Token != la.Token || ev.Leader.Key != la.Key {
		t.Fatalf("event %+v, want leader a (token %d)", ev, la.Token)
	}
	if err := la.Proclaim(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if ev := o.next("a proclaims"); ev.Leader.Value != "a2" || ev.Leader.Token != la.Token {
		t.Fatalf("event %+v, want a2 with token %d", ev, la.Token)
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := o.next("a resigns"); !ev.NoLeader || ev.Leader != (election.Leader{}) {
		t.Fatalf("event %+v, want no leader", ev)
	}

	b := newCandidate(t, cli, "obs", 10)
	lb, err := b.e.Campaign(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if ev := o.next("b elected"); ev.Leader.Value != "b" || ev.Leader.Token <= la.Token {
		t.Fatalf("event %+v, want b with a token above %d", ev, la.Token)
	}
	// c queues behind b: not an event. b's next value is the next event.
	c := newCandidate(t, cli, "obs", 10)
	cch := campaign(ctx, c, "c")
	waitCandidates(t, cli, "obs", 2)
	if err := lb.Proclaim(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if ev := o.next("b proclaims"); ev.Leader.Value != "b2" || ev.Leader.Token != lb.Token {
		t.Fatalf("event %+v, want b2", ev)
	}
	// b resigns with c waiting: c is the next leader, with no gap between.
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lc := elected(t, cch, "c")
	if ev := o.next("c elected"); ev.Leader.Value != "c" || ev.Leader.Token != lc.Token {
		t.Fatalf("event %+v, want c (token %d)", ev, lc.Token)
	}

	stop()
	select {
	case ev, ok := <-o.ch:
		if ok {
			t.Fatalf("event %+v after the context ended", ev)
		}
	case <-time.After(wait):
		t.Fatal("the channel is open after the context ended")
	}
	if err := lc.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestObserveResync: an observer cut off from the cluster while the leader
// changes and the history is compacted finds its watch compacted when it
// is back, reads the state again, and goes on from the new leader, never
// back to the old one.
func TestObserveResync(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 30*time.Second)
	p := startProxy(t, m.Endpoint())
	ocli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Addr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ocli.Close() })

	a := newCandidate(t, cli, "resync", 10)
	la, err := a.e.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	o := observe(t, ctx, ocli, "resync")
	if ev := o.next("a elected"); ev.Leader.Token != la.Token {
		t.Fatalf("event %+v, want a (token %d)", ev, la.Token)
	}

	p.cut(true)
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	b := newCandidate(t, cli, "resync", 10)
	lb, err := b.e.Campaign(ctx, "b")
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
	p.cut(false)

	// The events in between are compacted away: the observer can only
	// have read the state after them.
	if ev := o.next("after the partition"); ev.Leader.Token != lb.Token || ev.Leader.Value != "b2" || ev.Revision < resp.Header.Revision {
		t.Fatalf("event %+v, want b2 (token %d) at revision %d or later", ev, lb.Token, resp.Header.Revision)
	}
	if err := lb.Proclaim(ctx, "b3"); err != nil {
		t.Fatal(err)
	}
	if ev := o.next("b proclaims again"); ev.Leader.Value != "b3" {
		t.Fatalf("event %+v, want b3", ev)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
