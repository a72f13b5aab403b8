package election_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; the probe
	// ends on its own within the probe interval.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// wait bounds every wait for something that must happen.
const wait = 15 * time.Second

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, m *coordtest.Member) *clientv3.Client {
	t.Helper()
	cli := m.Client()
	t.Cleanup(func() { cli.Close() })
	return cli
}

// candidate is one participant: a session of its own and its Election.
type candidate struct {
	sess *concurrency.Session
	e    *election.Election
}

func newCandidate(t *testing.T, cli *clientv3.Client, name string, ttl int) *candidate {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	e, err := election.New(sess, name)
	if err != nil {
		t.Fatal(err)
	}
	return &candidate{sess: sess, e: e}
}

type result struct {
	l   *election.Leadership
	err error
}

// campaign starts Campaign and returns a channel with its result.
func campaign(ctx context.Context, c *candidate, value string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		l, err := c.e.Campaign(ctx, value)
		ch <- result{l, err}
	}()
	return ch
}

func elected(t *testing.T, ch <-chan result, what string) *election.Leadership {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.l
	case <-time.After(wait):
		t.Fatalf("%s: not elected after %v", what, wait)
		return nil
	}
}

func failed(t *testing.T, ch <-chan result, what string) error {
	t.Helper()
	select {
	case r := <-ch:
		if r.err == nil {
			t.Fatalf("%s: elected (token %d), want an error", what, r.l.Token)
		}
		return r.err
	case <-time.After(wait):
		t.Fatalf("%s: Campaign still waits after %v", what, wait)
		return nil
	}
}

func notYet(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: Campaign returned (%v) while it must wait", what, r.err)
	default:
	}
}

func closedWithin(t *testing.T, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not closed after %v", what, d)
	}
}

// waitCandidates polls until election name has n candidate keys.
func waitCandidates(t *testing.T, cli *clientv3.Client, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		resp, err := cli.Get(ctxT(t, 5*time.Second), election.DefaultPrefix+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: candidates after %v: %v (err %v), want %d", name, wait, resp, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leader(t *testing.T, cli *clientv3.Client, name string) election.Leader {
	t.Helper()
	ldr, err := election.CurrentLeader(ctxT(t, 5*time.Second), cli, name)
	if err != nil {
		t.Fatalf("leader of %s: %v", name, err)
	}
	return ldr
}

func noLeader(t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	if ldr, err := election.CurrentLeader(ctxT(t, 5*time.Second), cli, name); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("leader of %s: %+v, %v; want ErrNoLeader", name, ldr, err)
	}
}

// guardedPut writes key only while l is held, and reports whether it did.
func guardedPut(t *testing.T, cli *clientv3.Client, l *election.Leadership, key string) bool {
	t.Helper()
	resp, err := cli.Txn(ctxT(t, 5*time.Second)).If(l.Cmp()).Then(clientv3.OpPut(key, "x")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	return resp.Succeeded
}

func onEachTopology(t *testing.T, test func(t *testing.T, m *coordtest.Member)) {
	t.Run("single", func(t *testing.T) { test(t, coordtest.StartSingle(t)) })
	t.Run("follower", func(t *testing.T) { test(t, coordtest.StartCluster(t, 3).Follower()) })
}

// TestCampaignProclaimResign: the life of one leadership, on a single
// member and through a follower, and the keys etcd's recipe would use.
func TestCampaignProclaimResign(t *testing.T) { onEachTopology(t, testCampaignProclaimResign) }

func testCampaignProclaimResign(t *testing.T, m *coordtest.Member) {
	cli := client(t, m)
	ctx := ctxT(t, 30*time.Second)
	noLeader(t, cli, "life")
	a := newCandidate(t, cli, "life", 10)

	l, err := a.e.Campaign(ctx, "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	wantKey := fmt.Sprintf("%slife/%x", election.DefaultPrefix, int64(a.sess.Lease()))
	if l.Key != wantKey || a.e.Key() != wantKey {
		t.Fatalf("key %q (Election.Key %q), want %q", l.Key, a.e.Key(), wantKey)
	}
	ldr := leader(t, cli, "life")
	if ldr.Key != l.Key || ldr.Value != "10.0.0.1:80" || ldr.Token != l.Token || ldr.Lease != a.sess.Lease() || ldr.ModRevision != l.Token {
		t.Fatalf("leader %+v, leadership token %d", ldr, l.Token)
	}
	if own, err := a.e.Leader(ctx); err != nil || own != ldr {
		t.Fatalf("Election.Leader: %+v %v, want %+v", own, err, ldr)
	}
	if !guardedPut(t, cli, l, "life-data") {
		t.Fatal("a write guarded by Cmp failed while leading")
	}

	// Proclaim changes the value, not the token.
	if err := l.Proclaim(ctx, "10.0.0.1:81"); err != nil {
		t.Fatal(err)
	}
	if ldr2 := leader(t, cli, "life"); ldr2.Value != "10.0.0.1:81" || ldr2.Token != l.Token || ldr2.ModRevision <= ldr.ModRevision {
		t.Fatalf("after Proclaim: %+v (before %+v)", ldr2, ldr)
	}

	// Campaigning again with the session reuses the key: same token, new value.
	again, err := a.e.Campaign(ctx, "10.0.0.1:82")
	if err != nil {
		t.Fatal(err)
	}
	if again.Token != l.Token || leader(t, cli, "life").Value != "10.0.0.1:82" {
		t.Fatalf("re-campaign: token %d, want %d", again.Token, l.Token)
	}
	if err := again.Resign(ctx); err != nil {
		t.Fatal(err)
	}

	closedWithin(t, l.Done(), wait, "Done after Resign")
	if l.Context().Err() == nil {
		t.Fatal("Context not cancelled after Resign")
	}
	noLeader(t, cli, "life")
	if guardedPut(t, cli, l, "life-data") {
		t.Fatal("a write guarded by Cmp succeeded after Resign")
	}
	if err := l.Proclaim(ctx, "late"); !errors.Is(err, election.ErrNotLeader) {
		t.Fatalf("Proclaim after Resign: %v, want ErrNotLeader", err)
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatalf("second Resign: %v, want nil", err)
	}

	// A new campaign of the session is a new key: a larger token.
	next, err := a.e.Campaign(ctx, "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	if next.Token <= l.Token {
		t.Fatalf("token %d after resigning token %d", next.Token, l.Token)
	}
	if got, ok := election.FromContext(next.Context()); !ok || got != next {
		t.Fatal("FromContext(Leadership.Context()) does not return the leadership")
	}
	if err := next.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdRecipeInterop: etcd's concurrency.Election and this package
// take part in one election.
func TestEtcdRecipeInterop(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 30*time.Second)
	a := newCandidate(t, cli, "mixed", 10)
	l, err := a.e.Campaign(ctx, "ours")
	if err != nil {
		t.Fatal(err)
	}
	theirs := newCandidate(t, cli, "mixed", 10)
	etcdElection := concurrency.NewElection(theirs.sess, election.DefaultPrefix+"mixed")
	if resp, err := etcdElection.Leader(ctx); err != nil || string(resp.Kvs[0].Value) != "ours" {
		t.Fatalf("etcd sees leader %v, %v", resp, err)
	}
	done := make(chan error, 1)
	go func() { done <- etcdElection.Campaign(ctx, "theirs") }()
	waitCandidates(t, cli, "mixed", 2)
	select {
	case err := <-done:
		t.Fatalf("etcd's Campaign returned (%v) while we lead", err)
	default:
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("etcd's candidate not elected after we resigned")
	}
	if ldr := leader(t, cli, "mixed"); ldr.Value != "theirs" || ldr.Token != etcdElection.Rev() {
		t.Fatalf("leader %+v, etcd's rev %d", ldr, etcdElection.Rev())
	}
	if err := etcdElection.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBadName: names that are not one key segment are refused by every
// entry point, before any I/O.
func TestBadName(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 10*time.Second)
	sess, err := concurrency.NewSession(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, name := range []string{"", "a/b", "tab\there", "nul\x00"} {
		if _, err := election.New(sess, name); !errors.Is(err, election.ErrBadName) {
			t.Errorf("New(%q): %v", name, err)
		}
		if _, err := election.CurrentLeader(ctx, cli, name); !errors.Is(err, election.ErrBadName) {
			t.Errorf("CurrentLeader(%q): %v", name, err)
		}
		if _, err := election.Observe(ctx, cli, name); !errors.Is(err, election.ErrBadName) {
			t.Errorf("Observe(%q): %v", name, err)
		}
		if err := election.Run(ctx, cli, name, "v", func(context.Context) error { return nil }); !errors.Is(err, election.ErrBadName) {
			t.Errorf("Run(%q): %v", name, err)
		}
	}
}

// TestOrderAndHerdFree: candidates are elected in the order they
// campaigned, each with a larger token, and a resignation wakes only the
// next candidate (a herd would wake every one of the 20 waiting).
func TestOrderAndHerdFree(t *testing.T) {
	const n = 20
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 40*time.Second)

	first := newCandidate(t, cli, "queue", 30)
	l, err := first.e.Campaign(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make([]<-chan result, n)
	for i := range waiting {
		waiting[i] = campaign(ctx, newCandidate(t, cli, "queue", 30), fmt.Sprintf("c%d", i+1))
		waitCandidates(t, cli, "queue", i+2) // so that i+1 campaigned before i+2
	}
	before := election.Wakeups()
	for i, ch := range waiting {
		notYet(t, ch, fmt.Sprintf("candidate %d", i+1))
		if err := l.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		next := elected(t, ch, fmt.Sprintf("candidate %d", i+1))
		if next.Token <= l.Token {
			t.Fatalf("candidate %d: token %d after token %d", i+1, next.Token, l.Token)
		}
		if v := leader(t, cli, "queue").Value; v != fmt.Sprintf("c%d", i+1) {
			t.Fatalf("leader %q, want c%d", v, i+1)
		}
		l = next
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

// TestCampaignReturnsOnlyWithOwnKey is etcd issue 19597: a candidate whose
// key goes while it waits must not be told it leads, even when the key it
// waited for goes at the same time.
func TestCampaignReturnsOnlyWithOwnKey(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	ctx := ctxT(t, 40*time.Second)
	a := newCandidate(t, cli, "19597", 30)
	la, err := a.e.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("lease revoked while waiting", func(t *testing.T) {
		b := newCandidate(t, cli, "19597", 30)
		ch := campaign(ctx, b, "b")
		waitCandidates(t, cli, "19597", 2)
		if _, err := cli.Revoke(ctx, b.sess.Lease()); err != nil {
			t.Fatal(err)
		}
		if err := failed(t, ch, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("b: %v, want ErrSessionLost", err)
		}
		if ldr := leader(t, cli, "19597"); ldr.Token != la.Token {
			t.Fatalf("leader %+v, want a (token %d)", ldr, la.Token)
		}
	})

	t.Run("own key and the one before go together", func(t *testing.T) {
		b := newCandidate(t, cli, "19597", 30)
		ch := campaign(ctx, b, "b")
		waitCandidates(t, cli, "19597", 2)
		// One revision deletes the leader and the waiter: the waiter sees
		// the key before it go, and its own with it.
		if _, err := cli.Txn(ctx).Then(clientv3.OpDelete(la.Key), clientv3.OpDelete(b.e.Key())).Commit(); err != nil {
			t.Fatal(err)
		}
		if err := failed(t, ch, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("b: %v, want ErrSessionLost", err)
		}
		closedWithin(t, la.Done(), wait, "a's Done after its key was deleted")
		noLeader(t, cli, "19597")
	})

	t.Run("cancelled campaign withdraws", func(t *testing.T) {
		la, err := a.e.Campaign(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		b := newCandidate(t, cli, "19597", 30)
		cctx, cancel := context.WithCancel(ctx)
		ch := campaign(cctx, b, "b")
		waitCandidates(t, cli, "19597", 2)
		cancel()
		if err := failed(t, ch, "b"); !errors.Is(err, context.Canceled) {
			t.Fatalf("b: %v, want context.Canceled", err)
		}
		waitCandidates(t, cli, "19597", 1)
		if err := la.Resign(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("session lost before campaigning", func(t *testing.T) {
		b := newCandidate(t, cli, "19597", 30)
		if err := b.sess.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.e.Campaign(ctx, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("Campaign on a closed session: %v, want ErrSessionLost", err)
		}
	})
}

// TestDoneWhenLost: a leadership ends, and says so, when someone else
// revokes its lease or deletes its key.
func TestDoneWhenLost(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	admin := client(t, m)
	ctx := ctxT(t, 30*time.Second)

	for _, tc := range []struct {
		name string
		take func(l *election.Leadership, c *candidate) error
	}{
		{"lease revoked", func(_ *election.Leadership, c *candidate) error {
			_, err := admin.Revoke(ctx, c.sess.Lease())
			return err
		}},
		{"key deleted", func(l *election.Leadership, _ *candidate) error {
			_, err := admin.Delete(ctx, l.Key)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A long TTL: Done must come from the key, not the keep-alives.
			c := newCandidate(t, cli, "lost", 60)
			l, err := c.e.Campaign(ctx, "v")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.take(l, c); err != nil {
				t.Fatal(err)
			}
			closedWithin(t, l.Done(), 5*time.Second, "Done")
			if l.Context().Err() == nil {
				t.Fatal("Context not cancelled with Done")
			}
			if guardedPut(t, cli, l, "lost-data") {
				t.Fatal("a write guarded by Cmp succeeded after the loss")
			}
			if err := l.Proclaim(ctx, "w"); !errors.Is(err, election.ErrNotLeader) {
				t.Fatalf("Proclaim: %v, want ErrNotLeader", err)
			}
			if err := l.Resign(ctx); err != nil {
				t.Fatalf("Resign of a lost leadership: %v, want nil", err)
			}
			noLeader(t, cli, "lost")
		})
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
	ctx := ctxT(t, 50*time.Second)
	cliA, cliB, cliObs, cliObsKilled := client(t, lm), client(t, others[1]), client(t, others[0]), client(t, lm)

	a := newCandidate(t, cliA, "fail", 2)
	la, err := a.e.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b := newCandidate(t, cliB, "fail", 2)
	bch := campaign(ctx, b, "b")
	waitCandidates(t, cliObs, "fail", 2)
	obs := observe(t, ctx, cliObs, "fail")
	obsKilled := observe(t, ctx, cliObsKilled, "fail")
	for _, o := range []*observer{obs, obsKilled} {
		if ev := o.next("before the kill"); ev.Leader.Token != la.Token {
			t.Fatalf("event %+v, want a (token %d)", ev, la.Token)
		}
	}

	lm.Kill()
	lb := elected(t, bch, "b after the kill")
	if lb.Token <= la.Token {
		t.Fatalf("b's token %d, a's %d", lb.Token, la.Token)
	}
	closedWithin(t, la.Done(), wait, "a's Done")
	if ev := obs.next("after the kill"); ev.Leader.Token != lb.Token || ev.Leader.Value != "b" {
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
	obsKilled.until("b2 after the restart", func(ev election.Event) bool { return ev.Leader.Value == "b2" })
	if ev := obs.next("b proclaims"); ev.Leader.Value != "b2" {
		t.Fatalf("event %+v, want b2", ev)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
