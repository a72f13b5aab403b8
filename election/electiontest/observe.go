package electiontest

import (
	"context"
	"testing"
	"time"

	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Observer reads an Observe channel and checks that every event is newer
// than the one before.
type Observer struct {
	t    *testing.T
	ch   <-chan election.Event
	last *election.Event
	top  election.Leader
}

// Observe starts election.Observe of election name on cli until ctx ends.
func Observe(t *testing.T, ctx context.Context, cli *clientv3.Client, name string) *Observer {
	t.Helper()
	ch, err := election.Observe(ctx, cli, name)
	if err != nil {
		t.Fatal(err)
	}
	return &Observer{t: t, ch: ch}
}

// Next returns the next event, failing the test if none comes within
// Wait, the channel closes, or the event is not newer than the last.
func (o *Observer) Next(what string) election.Event {
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
	case <-time.After(Wait):
		o.t.Fatalf("%s: no event after %v", what, Wait)
		return election.Event{}
	}
}

// Until reads events until one satisfies ok.
func (o *Observer) Until(what string, ok func(election.Event) bool) election.Event {
	o.t.Helper()
	for range 20 {
		if ev := o.Next(what); ok(ev) {
			return ev
		}
	}
	o.t.Fatalf("%s: not seen in 20 events", what)
	return election.Event{}
}

// Closed fails the test unless the channel closes, with no event before,
// within Wait.
func (o *Observer) Closed(what string) {
	o.t.Helper()
	select {
	case ev, ok := <-o.ch:
		if ok {
			o.t.Fatalf("%s: event %+v, want the channel closed", what, ev)
		}
	case <-time.After(Wait):
		o.t.Fatalf("%s: the channel is open after %v", what, Wait)
	}
}

// An observer sees the current state, every leader, each proclaimed
// value, and "no leader" when there is none, in order; changes of
// candidates that do not lead are not events.
func testObserve(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 30*time.Second)
	octx, stop := context.WithCancel(ctx)
	o := Observe(t, octx, cli, "obs")

	if ev := o.Next("initial"); !ev.NoLeader || ev.Revision == 0 {
		t.Fatalf("initial event %+v, want no leader", ev)
	}
	a := NewCandidate(t, cli, "obs", 10)
	la, err := a.Election.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("a elected"); ev.NoLeader || ev.Leader.Value != "a" || ev.Leader.Token != la.Token || ev.Leader.Key != la.Key {
		t.Fatalf("event %+v, want leader a (token %d)", ev, la.Token)
	}
	if err := la.Proclaim(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("a proclaims"); ev.Leader.Value != "a2" || ev.Leader.Token != la.Token {
		t.Fatalf("event %+v, want a2 with token %d", ev, la.Token)
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("a resigns"); !ev.NoLeader || ev.Leader != (election.Leader{}) {
		t.Fatalf("event %+v, want no leader", ev)
	}

	b := NewCandidate(t, cli, "obs", 10)
	lb, err := b.Election.Campaign(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("b elected"); ev.Leader.Value != "b" || ev.Leader.Token <= la.Token {
		t.Fatalf("event %+v, want b with a token above %d", ev, la.Token)
	}
	// c queues behind b: not an event. b's next value is the next event.
	c := NewCandidate(t, cli, "obs", 10)
	cch := CampaignAsync(ctx, c, "c")
	WaitCandidates(t, cli, "obs", 2)
	if err := lb.Proclaim(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("b proclaims"); ev.Leader.Value != "b2" || ev.Leader.Token != lb.Token {
		t.Fatalf("event %+v, want b2", ev)
	}
	// b resigns with c waiting: c is the next leader, with no gap between.
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lc := Elected(t, cch, "c")
	if ev := o.Next("c elected"); ev.Leader.Value != "c" || ev.Leader.Token != lc.Token {
		t.Fatalf("event %+v, want c (token %d)", ev, lc.Token)
	}

	stop()
	o.Closed("after the context ended")
	if err := lc.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// Compacting the history under a leader, a waiting candidate and an
// observer changes nothing: the leader keeps leading, the candidate is
// elected when it resigns, the observer goes on, and one started after
// the compaction reads the state.
func testCompaction(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 30*time.Second)
	o := Observe(t, ctx, cli, "compact")
	if ev := o.Next("initial"); !ev.NoLeader {
		t.Fatalf("initial event %+v, want no leader", ev)
	}
	a := NewCandidate(t, cli, "compact", 10)
	la, err := a.Election.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ev := o.Next("a elected"); ev.Leader.Token != la.Token {
		t.Fatalf("event %+v, want a (token %d)", ev, la.Token)
	}
	bch := CampaignAsync(ctx, NewCandidate(t, cli, "compact", 10), "b")
	WaitCandidates(t, cli, "compact", 2)
	if err := la.Proclaim(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	if err := la.Proclaim(ctx, "a3"); err != nil {
		t.Fatalf("Proclaim after the compaction: %v", err)
	}
	o.Until("a3 after the compaction", func(ev election.Event) bool { return ev.Leader.Value == "a3" })
	select {
	case <-la.Done():
		t.Fatal("the compaction ended the leadership")
	default:
	}
	NotYet(t, bch, "b while a leads")
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lb := Elected(t, bch, "b after a resigned")
	if ev := o.Next("b elected"); ev.Leader.Value != "b" || ev.Leader.Token != lb.Token {
		t.Fatalf("event %+v, want b (token %d)", ev, lb.Token)
	}
	late := Observe(t, ctx, cli, "compact")
	if ev := late.Next("observer started after the compaction"); ev.Leader.Token != lb.Token || ev.Revision < resp.Header.Revision {
		t.Fatalf("event %+v, want b (token %d) at revision %d or later", ev, lb.Token, resp.Header.Revision)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
