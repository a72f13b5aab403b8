package election_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runProbe is a function for Run that reports when it starts and stops.
type runProbe struct {
	started chan *election.Leadership
	stopped chan time.Time
	ret     chan error // a value makes the function return it
}

func newRunProbe() *runProbe {
	return &runProbe{started: make(chan *election.Leadership, 10), stopped: make(chan time.Time, 10), ret: make(chan error)}
}

func (p *runProbe) fn(ctx context.Context) error {
	l, ok := election.FromContext(ctx)
	if !ok {
		return errors.New("no leadership in fn's context")
	}
	p.started <- l
	select {
	case <-ctx.Done():
		p.stopped <- time.Now()
		return ctx.Err()
	case err := <-p.ret:
		return err
	}
}

func (p *runProbe) start(t *testing.T, what string) *election.Leadership {
	t.Helper()
	select {
	case l := <-p.started:
		return l
	case <-time.After(wait):
		t.Fatalf("%s: fn not started after %v", what, wait)
		return nil
	}
}

func runAsync(ctx context.Context, cli *clientv3.Client, name string, p *runProbe, ttl int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- election.Run(ctx, cli, name, "runner", p.fn, election.WithTTL(ttl)) }()
	return done
}

func returned(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatalf("%s: Run still runs after %v", what, wait)
		return nil
	}
}

// TestRunSessionLoss: when Run's lease is revoked, fn's context is
// cancelled at once (by the key's deletion, long before the keep-alives
// could tell), and Run campaigns again on a new session; when ctx ends,
// Run resigns and revokes its lease.
func TestRunSessionLoss(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	admin := client(t, m)
	ctx := ctxT(t, 40*time.Second)
	rctx, stop := context.WithCancel(ctx)
	p := newRunProbe()
	done := runAsync(rctx, cli, "run", p, 30)

	l1 := p.start(t, "first term")
	ldr := leader(t, admin, "run")
	if ldr.Token != l1.Token || ldr.Value != "runner" {
		t.Fatalf("leader %+v, fn has token %d", ldr, l1.Token)
	}
	revoked := time.Now()
	if _, err := admin.Revoke(ctx, ldr.Lease); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-p.stopped:
		if d := at.Sub(revoked); d > 2*time.Second {
			t.Fatalf("fn's context cancelled %v after the revoke", d)
		}
	case <-time.After(wait):
		t.Fatal("fn's context not cancelled after the lease was revoked")
	}
	l2 := p.start(t, "second term")
	ldr2 := leader(t, admin, "run")
	if l2.Token <= l1.Token || ldr2.Token != l2.Token || ldr2.Lease == ldr.Lease {
		t.Fatalf("second term: token %d (first %d), leader %+v, old lease %x", l2.Token, l1.Token, ldr2, int64(ldr.Lease))
	}

	stop()
	if err := returned(t, done, "after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	noLeader(t, admin, "run")
	ttl, err := admin.TimeToLive(ctx, ldr2.Lease)
	if err != nil || ttl.TTL != -1 {
		t.Fatalf("Run's lease after it returned: %+v, %v; want revoked", ttl, err)
	}
}

// TestRunFnReturns: fn returning nil hands the leadership to the next
// candidate and campaigns again behind it; fn returning an error ends Run
// with that error, resigned.
func TestRunFnReturns(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	admin := client(t, m)
	ctx := ctxT(t, 40*time.Second)
	p := newRunProbe()
	done := runAsync(ctx, cli, "loop", p, 30)

	l1 := p.start(t, "first term")
	other := newCandidate(t, admin, "loop", 30)
	och := campaign(ctx, other, "other")
	waitCandidates(t, admin, "loop", 2)

	p.ret <- nil
	lo := elected(t, och, "the other candidate")
	waitCandidates(t, admin, "loop", 2) // Run queued again, behind it
	select {
	case l := <-p.started:
		t.Fatalf("fn runs again (token %d) while another leads", l.Token)
	default:
	}
	if err := lo.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := p.start(t, "second term")
	if !(l1.Token < lo.Token && lo.Token < l2.Token) {
		t.Fatalf("tokens %d, %d, %d do not increase", l1.Token, lo.Token, l2.Token)
	}

	boom := errors.New("boom")
	p.ret <- boom
	if err := returned(t, done, "after fn failed"); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want boom", err)
	}
	noLeader(t, admin, "loop")
}
