package electiontest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// The life of one leadership, and the keys etcd's recipe would use.
func testCampaignProclaimResign(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 30*time.Second)
	NoLeader(t, cli, "life")
	a := NewCandidate(t, cli, "life", 10)

	l, err := a.Election.Campaign(ctx, "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	wantKey := fmt.Sprintf("%slife/%x", election.DefaultPrefix, int64(a.Sess.Lease()))
	if l.Key != wantKey || a.Election.Key() != wantKey {
		t.Fatalf("key %q (Election.Key %q), want %q", l.Key, a.Election.Key(), wantKey)
	}
	ldr := Leader(t, cli, "life")
	if ldr.Key != l.Key || ldr.Value != "10.0.0.1:80" || ldr.Token != l.Token || ldr.Lease != a.Sess.Lease() || ldr.ModRevision != l.Token {
		t.Fatalf("leader %+v, leadership token %d", ldr, l.Token)
	}
	if own, err := a.Election.Leader(ctx); err != nil || own != ldr {
		t.Fatalf("Election.Leader: %+v %v, want %+v", own, err, ldr)
	}
	if !GuardedPut(t, cli, l, "life-data") {
		t.Fatal("a write guarded by Cmp failed while leading")
	}

	// Proclaim changes the value, not the token.
	if err := l.Proclaim(ctx, "10.0.0.1:81"); err != nil {
		t.Fatal(err)
	}
	if ldr2 := Leader(t, cli, "life"); ldr2.Value != "10.0.0.1:81" || ldr2.Token != l.Token || ldr2.ModRevision <= ldr.ModRevision {
		t.Fatalf("after Proclaim: %+v (before %+v)", ldr2, ldr)
	}

	// Campaigning again with the session reuses the key: same token, new value.
	again, err := a.Election.Campaign(ctx, "10.0.0.1:82")
	if err != nil {
		t.Fatal(err)
	}
	if again.Token != l.Token || Leader(t, cli, "life").Value != "10.0.0.1:82" {
		t.Fatalf("re-campaign: token %d, want %d", again.Token, l.Token)
	}
	if err := again.Resign(ctx); err != nil {
		t.Fatal(err)
	}

	ClosedWithin(t, l.Done(), Wait, "Done after Resign")
	if l.Context().Err() == nil {
		t.Fatal("Context not cancelled after Resign")
	}
	NoLeader(t, cli, "life")
	if GuardedPut(t, cli, l, "life-data") {
		t.Fatal("a write guarded by Cmp succeeded after Resign")
	}
	if err := l.Proclaim(ctx, "late"); !errors.Is(err, election.ErrNotLeader) {
		t.Fatalf("Proclaim after Resign: %v, want ErrNotLeader", err)
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatalf("second Resign: %v, want nil", err)
	}

	// A new campaign of the session is a new key: a larger token.
	next, err := a.Election.Campaign(ctx, "10.0.0.1:80")
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

// etcd's concurrency.Election and this package take part in one election.
func testEtcdRecipeInterop(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 30*time.Second)
	a := NewCandidate(t, cli, "mixed", 10)
	l, err := a.Election.Campaign(ctx, "ours")
	if err != nil {
		t.Fatal(err)
	}
	theirs := NewCandidate(t, cli, "mixed", 10)
	etcdElection := concurrency.NewElection(theirs.Sess, election.DefaultPrefix+"mixed")
	if resp, err := etcdElection.Leader(ctx); err != nil || string(resp.Kvs[0].Value) != "ours" {
		t.Fatalf("etcd sees leader %v, %v", resp, err)
	}
	done := make(chan error, 1)
	go func() { done <- etcdElection.Campaign(ctx, "theirs") }()
	WaitCandidates(t, cli, "mixed", 2)
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
	case <-time.After(Wait):
		t.Fatal("etcd's candidate not elected after we resigned")
	}
	if ldr := Leader(t, cli, "mixed"); ldr.Value != "theirs" || ldr.Token != etcdElection.Rev() {
		t.Fatalf("leader %+v, etcd's rev %d", ldr, etcdElection.Rev())
	}
	if err := etcdElection.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// Names that are not one key segment are refused by every entry point,
// before any I/O.
func testBadName(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 10*time.Second)
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

// Candidates are elected in the order they campaigned, each with a larger
// token. (That a resignation wakes only the next of them is checked in the
// election package, which counts the wake-ups.)
func testOrder(t *testing.T, env Env) {
	const n = 10
	cli := connect(t, env)
	ctx := Ctx(t, 40*time.Second)

	first := NewCandidate(t, cli, "queue", 30)
	l, err := first.Election.Campaign(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make([]<-chan Result, n)
	for i := range waiting {
		waiting[i] = CampaignAsync(ctx, NewCandidate(t, cli, "queue", 30), fmt.Sprintf("c%d", i+1))
		WaitCandidates(t, cli, "queue", i+2) // so that i+1 campaigned before i+2
	}
	for i, ch := range waiting {
		for j := i; j < n; j++ {
			NotYet(t, waiting[j], fmt.Sprintf("candidate %d", j+1))
		}
		if err := l.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		next := Elected(t, ch, fmt.Sprintf("candidate %d", i+1))
		if next.Token <= l.Token {
			t.Fatalf("candidate %d: token %d after token %d", i+1, next.Token, l.Token)
		}
		if v := Leader(t, cli, "queue").Value; v != fmt.Sprintf("c%d", i+1) {
			t.Fatalf("leader %q, want c%d", v, i+1)
		}
		l = next
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// etcd issue 19597: a candidate whose key goes while it waits must not be
// told it leads, even when the key it waited for goes at the same time.
func testCampaignReturnsOnlyWithOwnKey(t *testing.T, env Env) {
	cli := connect(t, env)
	ctx := Ctx(t, 40*time.Second)
	a := NewCandidate(t, cli, "19597", 30)
	la, err := a.Election.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("lease revoked while waiting", func(t *testing.T) {
		b := NewCandidate(t, cli, "19597", 30)
		ch := CampaignAsync(ctx, b, "b")
		WaitCandidates(t, cli, "19597", 2)
		if _, err := cli.Revoke(ctx, b.Sess.Lease()); err != nil {
			t.Fatal(err)
		}
		if err := Failed(t, ch, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("b: %v, want ErrSessionLost", err)
		}
		if ldr := Leader(t, cli, "19597"); ldr.Token != la.Token {
			t.Fatalf("leader %+v, want a (token %d)", ldr, la.Token)
		}
	})

	t.Run("own key and the one before go together", func(t *testing.T) {
		b := NewCandidate(t, cli, "19597", 30)
		ch := CampaignAsync(ctx, b, "b")
		WaitCandidates(t, cli, "19597", 2)
		// One revision deletes the leader and the waiter: the waiter sees
		// the key before it go, and its own with it.
		if _, err := cli.Txn(ctx).Then(clientv3.OpDelete(la.Key), clientv3.OpDelete(b.Election.Key())).Commit(); err != nil {
			t.Fatal(err)
		}
		if err := Failed(t, ch, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("b: %v, want ErrSessionLost", err)
		}
		ClosedWithin(t, la.Done(), Wait, "a's Done after its key was deleted")
		NoLeader(t, cli, "19597")
	})

	t.Run("cancelled campaign withdraws", func(t *testing.T) {
		la, err := a.Election.Campaign(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		b := NewCandidate(t, cli, "19597", 30)
		cctx, cancel := context.WithCancel(ctx)
		ch := CampaignAsync(cctx, b, "b")
		WaitCandidates(t, cli, "19597", 2)
		cancel()
		if err := Failed(t, ch, "b"); !errors.Is(err, context.Canceled) {
			t.Fatalf("b: %v, want context.Canceled", err)
		}
		WaitCandidates(t, cli, "19597", 1)
		if err := la.Resign(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("session lost before campaigning", func(t *testing.T) {
		b := NewCandidate(t, cli, "19597", 30)
		if err := b.Sess.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Election.Campaign(ctx, "b"); !errors.Is(err, election.ErrSessionLost) {
			t.Fatalf("Campaign on a closed session: %v, want ErrSessionLost", err)
		}
	})
}

// A leadership ends, and says so, when someone else revokes its lease or
// deletes its key.
func testDoneWhenLost(t *testing.T, env Env) {
	cli := connect(t, env)
	admin := connect(t, env)
	ctx := Ctx(t, 30*time.Second)

	for _, tc := range []struct {
		name string
		take func(l *election.Leadership, c *Candidate) error
	}{
		{"lease revoked", func(_ *election.Leadership, c *Candidate) error {
			_, err := admin.Revoke(ctx, c.Sess.Lease())
			return err
		}},
		{"key deleted", func(l *election.Leadership, _ *Candidate) error {
			_, err := admin.Delete(ctx, l.Key)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A long TTL: Done must come from the key, not the keep-alives.
			c := NewCandidate(t, cli, "lost", 60)
			l, err := c.Election.Campaign(ctx, "v")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.take(l, c); err != nil {
				t.Fatal(err)
			}
			ClosedWithin(t, l.Done(), 5*time.Second, "Done")
			if l.Context().Err() == nil {
				t.Fatal("Context not cancelled with Done")
			}
			if GuardedPut(t, cli, l, "lost-data") {
				t.Fatal("a write guarded by Cmp succeeded after the loss")
			}
			if err := l.Proclaim(ctx, "w"); !errors.Is(err, election.ErrNotLeader) {
				t.Fatalf("Proclaim: %v, want ErrNotLeader", err)
			}
			if err := l.Resign(ctx); err != nil {
				t.Fatalf("Resign of a lost leadership: %v, want nil", err)
			}
			NoLeader(t, cli, "lost")
		})
	}
}
