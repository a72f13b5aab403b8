package electiontest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RunProbe is a function for election.Run that reports when it starts and
// stops, and returns what it is told to.
type RunProbe struct {
	started chan *election.Leadership
	// Stopped receives the time fn saw its context cancelled.
	Stopped chan time.Time
	// Ret makes a running fn return the value sent.
	Ret chan error
}

// NewRunProbe returns a probe; pass its Fn to election.Run.
func NewRunProbe() *RunProbe {
	return &RunProbe{started: make(chan *election.Leadership, 10), Stopped: make(chan time.Time, 10), Ret: make(chan error)}
}

// Fn is the function for election.Run: it runs until its context is
// cancelled or it is told to return.
func (p *RunProbe) Fn(ctx context.Context) error {
	l, ok := election.FromContext(ctx)
	if !ok {
		return errors.New("no leadership in fn's context")
	}
	p.started <- l
	select {
	case <-ctx.Done():
		p.Stopped <- time.Now()
		return ctx.Err()
	case err := <-p.Ret:
		return err
	}
}

// Start returns the leadership of the next term of Fn, failing the test
// if Fn does not start within Wait.
func (p *RunProbe) Start(t *testing.T, what string) *election.Leadership {
	t.Helper()
	select {
	case l := <-p.started:
		return l
	case <-time.After(Wait):
		t.Fatalf("%s: fn not started after %v", what, Wait)
		return nil
	}
}

// notStarted fails the test if Fn has started a term not taken by Start.
func (p *RunProbe) notStarted(t *testing.T, what string) {
	t.Helper()
	select {
	case l := <-p.started:
		t.Fatalf("%s: fn runs (token %d)", what, l.Token)
	default:
	}
}

// RunAsync starts election.Run of p.Fn with value "runner" and returns a
// channel with its result.
func RunAsync(ctx context.Context, cli *clientv3.Client, name string, p *RunProbe, ttl int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- election.Run(ctx, cli, name, "runner", p.Fn, election.WithTTL(ttl)) }()
	return done
}

// Returned returns the result of a RunAsync, failing the test if Run
// still runs after Wait.
func Returned(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(Wait):
		t.Fatalf("%s: Run still runs after %v", what, Wait)
		return nil
	}
}

// When Run's lease is revoked, fn's context is cancelled at once (by the
// key's deletion, long before the keep-alives could tell), and Run
// campaigns again on a new session; when ctx ends, Run resigns and revokes
// its lease.
func testRunSessionLoss(t *testing.T, env Env) {
	cli := connect(t, env)
	admin := connect(t, env)
	ctx := Ctx(t, 40*time.Second)
	rctx, stop := context.WithCancel(ctx)
	p := NewRunProbe()
	done := RunAsync(rctx, cli, "run", p, 30)

	l1 := p.Start(t, "first term")
	ldr := Leader(t, admin, "run")
	if ldr.Token != l1.Token || ldr.Value != "runner" {
		t.Fatalf("leader %+v, fn has token %d", ldr, l1.Token)
	}
	revoked := time.Now()
	if _, err := admin.Revoke(ctx, ldr.Lease); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-p.Stopped:
		if d := at.Sub(revoked); d > 2*time.Second {
			t.Fatalf("fn's context cancelled %v after the revoke", d)
		}
	case <-time.After(Wait):
		t.Fatal("fn's context not cancelled after the lease was revoked")
	}
	l2 := p.Start(t, "second term")
	ldr2 := Leader(t, admin, "run")
	if l2.Token <= l1.Token || ldr2.Token != l2.Token || ldr2.Lease == ldr.Lease {
		t.Fatalf("second term: token %d (first %d), leader %+v, old lease %x", l2.Token, l1.Token, ldr2, int64(ldr.Lease))
	}

	stop()
	if err := Returned(t, done, "after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	NoLeader(t, admin, "run")
	ttl, err := admin.TimeToLive(ctx, ldr2.Lease)
	if err != nil || ttl.TTL != -1 {
		t.Fatalf("Run's lease after it returned: %+v, %v; want revoked", ttl, err)
	}
}

// fn returning nil hands the leadership to the next candidate and
// campaigns again behind it; fn returning an error ends Run with that
// error, resigned.
func testRunFnReturns(t *testing.T, env Env) {
	cli := connect(t, env)
	admin := connect(t, env)
	ctx := Ctx(t, 40*time.Second)
	p := NewRunProbe()
	done := RunAsync(ctx, cli, "loop", p, 30)

	l1 := p.Start(t, "first term")
	other := NewCandidate(t, admin, "loop", 30)
	och := CampaignAsync(ctx, other, "other")
	WaitCandidates(t, admin, "loop", 2)

	p.Ret <- nil
	lo := Elected(t, och, "the other candidate")
	WaitCandidates(t, admin, "loop", 2) // Run queued again, behind it
	p.notStarted(t, "while another leads")
	if err := lo.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := p.Start(t, "second term")
	if !(l1.Token < lo.Token && lo.Token < l2.Token) {
		t.Fatalf("tokens %d, %d, %d do not increase", l1.Token, lo.Token, l2.Token)
	}

	boom := errors.New("boom")
	p.Ret <- boom
	if err := Returned(t, done, "after fn failed"); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want boom", err)
	}
	NoLeader(t, admin, "loop")
}
