package election_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	"github.com/coordhq/coord/election/electiontest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; the probe
	// ends on its own within the probe interval.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// memberEnv connects the suite to one coordd member.
func memberEnv(m *coordtest.Member) electiontest.Env {
	return electiontest.Env{Connect: func(t *testing.T) *clientv3.Client { return m.Client() }}
}

// TestSuite runs the semantic suite on a single coordd member and on a
// follower of three (whose writes are forwarded to the leader). The same
// suite runs against etcd in tests/compat.
func TestSuite(t *testing.T) {
	t.Run("single", func(t *testing.T) { electiontest.Run(t, memberEnv(coordtest.StartSingle(t))) })
	t.Run("follower", func(t *testing.T) { electiontest.Run(t, memberEnv(coordtest.StartCluster(t, 3).Follower())) })
}

func client(t *testing.T, m *coordtest.Member) *clientv3.Client {
	t.Helper()
	cli := m.Client()
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestHerdFree: a resignation wakes only the next candidate (a herd would
// wake every one of the 20 waiting). The wake-ups are counted inside the
// package, so this stays out of the suite, which checks the order.
func TestHerdFree(t *testing.T) {
	const n = 20
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := electiontest.Ctx(t, 40*time.Second)

	first := electiontest.NewCandidate(t, cli, "herd", 30)
	l, err := first.Election.Campaign(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make([]<-chan electiontest.Result, n)
	for i := range waiting {
		waiting[i] = electiontest.CampaignAsync(ctx, electiontest.NewCandidate(t, cli, "herd", 30), fmt.Sprintf("c%d", i+1))
		electiontest.WaitCandidates(t, cli, "herd", i+2) // so that i+1 campaigned before i+2
	}
	before := election.Wakeups()
	for i, ch := range waiting {
		if err := l.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		l = electiontest.Elected(t, ch, fmt.Sprintf("candidate %d", i+1))
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	perResign := float64(election.Wakeups()-before) / n
	t.Logf("%.2f wake-ups per resignation with up to %d waiting", perResign, n)
	if perResign > 1.5 {
		t.Fatalf("%.2f wake-ups per resignation: not herd-free", perResign)
	}
}

// TestFailover: the member serving the leader is killed. A candidate
// connected to another member is elected once the old leader's lease
// expires, the old leader's Done closes, and observers on both sides see
// the new leader and never the old one again: the one connected to the
// killed member once it is restarted (its watch resumes or, if the
// compaction was applied first, it reads the state again).
func TestFailover(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	lm := c.Leader()
	var others []*coordtest.Member
	for _, m := range c.Members {
		if m != lm {
			others = append(others, m)
		}
	}
	ctx := electiontest.Ctx(t, 50*time.Second)
	cliA, cliB, cliObs, cliObsKilled := client(t, lm), client(t, others[1]), client(t, others[0]), client(t, lm)

	a := electiontest.NewCandidate(t, cliA, "fail", 2)
	la, err := a.Election.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b := electiontest.NewCandidate(t, cliB, "fail", 2)
	bch := electiontest.CampaignAsync(ctx, b, "b")
	electiontest.WaitCandidates(t, cliObs, "fail", 2)
	obs := electiontest.Observe(t, ctx, cliObs, "fail")
	obsKilled := electiontest.Observe(t, ctx, cliObsKilled, "fail")
	for _, o := range []*electiontest.Observer{obs, obsKilled} {
		if ev := o.Next("before the kill"); ev.Leader.Token != la.Token {
			t.Fatalf("event %+v, want a (token %d)", ev, la.Token)
		}
	}

	lm.Kill()
	lb := electiontest.Elected(t, bch, "b after the kill")
	if lb.Token <= la.Token {
		t.Fatalf("b's token %d, a's %d", lb.Token, la.Token)
	}
	electiontest.ClosedWithin(t, la.Done(), electiontest.Wait, "a's Done")
	if ev := obs.Next("after the kill"); ev.Leader.Token != lb.Token || ev.Leader.Value != "b" {
		t.Fatalf("event %+v, want b (token %d)", ev, lb.Token)
	}

	// History the killed member's observer has not seen is compacted away
	// before it comes back; it must read the state again.
	if err := lb.Proclaim(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	resp, err := cliB.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cliB.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	lm.Restart()
	obsKilled.Until("b2 after the restart", func(ev election.Event) bool { return ev.Leader.Value == "b2" })
	if ev := obs.Next("b proclaims"); ev.Leader.Value != "b2" {
		t.Fatalf("event %+v, want b2", ev)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
