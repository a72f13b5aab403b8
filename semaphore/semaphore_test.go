package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// participant is one holder: its own client and session.
type participant struct {
	cli  *clientv3.Client
	sess *concurrency.Session
	sem  *semaphore.Semaphore
}

func newParticipant(t *testing.T, m *coordtest.Member, name string, opts ...semaphore.Option) *participant {
	t.Helper()
	return newParticipantTTL(t, m, name, 5, opts...)
}

func newParticipantTTL(t *testing.T, m *coordtest.Member, name string, ttl int, opts ...semaphore.Option) *participant {
	t.Helper()
	cli := m.Client()
	t.Cleanup(func() { cli.Close() })
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	sem, err := semaphore.New(sess, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &participant{cli: cli, sess: sess, sem: sem}
}

// acquireAsync starts Acquire and returns a channel with its result.
type result struct {
	g   *semaphore.Grant
	err error
}

func acquireAsync(ctx context.Context, p *participant) <-chan result {
	ch := make(chan result, 1)
	go func() {
		g, err := p.sem.Acquire(ctx)
		ch <- result{g, err}
	}()
	return ch
}

// waitWaiters polls the status until n waiters are queued.
func waitWaiters(t *testing.T, cli *clientv3.Client, name string, n int) *semaphore.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := semaphore.GetStatus(ctxT(t, 5*time.Second), cli, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) == n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters after 10s, want %d", len(st.Waiters), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func notYet(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: admitted (%v) while it must wait", what, r.err)
	default:
	}
}

func get(t *testing.T, ch <-chan result, what string) *semaphore.Grant {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.g
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: not admitted after 15s", what)
		return nil
	}
}

func TestLimitTryAcquireAndRelease(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 30*time.Second)
	a := newParticipant(t, m, "jobs", semaphore.WithLimit(2))
	b := newParticipant(t, m, "jobs", semaphore.WithLimit(2))
	c := newParticipant(t, m, "jobs", semaphore.WithLimit(5)) // the stored limit wins

	ga, err := a.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.sem.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gb.Token <= ga.Token {
		t.Fatalf("tokens %d then %d: not increasing", ga.Token, gb.Token)
	}
	if _, err := c.sem.TryAcquire(ctx); !errors.Is(err, semaphore.ErrNoSlot) {
		t.Fatalf("third TryAcquire of 2 slots: err = %v, want ErrNoSlot", err)
	}
	st := waitWaiters(t, a.cli, "jobs", 0) // TryAcquire left no queue entry
	if st.Limit != 2 || len(st.Holders) != 2 {
		t.Fatalf("status: limit %d, %d holders; want 2, 2", st.Limit, len(st.Holders))
	}

	cc := acquireAsync(ctx, c)
	waitWaiters(t, a.cli, "jobs", 1)
	notYet(t, cc, "c")
	if err := ga.Release(ctx); err != nil {
		t.Fatal(err)
	}
	gc := get(t, cc, "c after a released")
	if gc.Token <= gb.Token {
		t.Fatalf("token %d after %d: not increasing", gc.Token, gb.Token)
	}
	select {
	case <-ga.Done():
	default:
		t.Fatal("released grant's Done is open")
	}
	// The released grant's compare fails; the live one's holds.
	for _, tc := range []struct {
		g    *semaphore.Grant
		want bool
	}{{ga, false}, {gc, true}} {
		resp, err := a.cli.Txn(ctx).If(tc.g.Cmp()).Commit()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Succeeded != tc.want {
			t.Fatalf("Cmp of token %d = %v, want %v", tc.g.Token, resp.Succeeded, tc.want)
		}
	}
	// Releasing twice changes nothing, and cannot release c's slot.
	if err := ga.Release(ctx); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("second release: %v, want ErrNotHeld", err)
	}
	if st, _ := semaphore.GetStatus(ctx, a.cli, "jobs"); len(st.Holders) != 2 {
		t.Fatalf("%d holders after a stale release, want 2", len(st.Holders))
	}
	gb.Release(ctx)
	gc.Release(ctx)
}

func TestFIFO(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 60*time.Second)
	first := newParticipant(t, m, "fifo")
	g, err := first.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var chans []<-chan result
	var ids []string
	for i := range n {
		p := newParticipant(t, m, "fifo", semaphore.WithHolderID(fmt.Sprintf("w%d", i)))
		chans = append(chans, acquireAsync(ctx, p))
		ids = append(ids, p.sem.HolderID())
		waitWaiters(t, first.cli, "fifo", i+1) // w_i queued before w_i+1 asks
	}
	st := waitWaiters(t, first.cli, "fifo", n)
	for i, w := range st.Waiters {
		if w.ID != ids[i] {
			t.Fatalf("waiter %d is %s, want %s", i, w.ID, ids[i])
		}
	}
	for i := range n {
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		g = get(t, chans[i], ids[i])
		for j := i + 1; j < n; j++ {
			notYet(t, chans[j], ids[j])
		}
	}
	g.Release(ctx)
}

func TestSetLimit(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 60*time.Second)
	h := newParticipant(t, m, "lim")
	g0, err := h.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan result
	for i := range 4 {
		chans = append(chans, acquireAsync(ctx, newParticipant(t, m, "lim")))
		waitWaiters(t, h.cli, "lim", i+1)
	}
	// Raising 1 -> 3 admits the next two waiters at once.
	if err := semaphore.SetLimit(ctx, h.cli, "lim", 3); err != nil {
		t.Fatal(err)
	}
	g1, g2 := get(t, chans[0], "w0"), get(t, chans[1], "w1")
	waitWaiters(t, h.cli, "lim", 2)
	notYet(t, chans[2], "w2")

	// Lowering 3 -> 1: the three holders keep their slots; releases do not
	// admit anyone until fewer than 1 slot is taken.
	if err := semaphore.SetLimit(ctx, h.cli, "lim", 1); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*semaphore.Grant{g0, g1} {
		select {
		case <-g.Done():
			t.Fatal("lowering the limit took a slot away")
		default:
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// The head waiter has seen this release once it is queued behind
		// the same state; the status shows it still waiting.
		st := waitWaiters(t, h.cli, "lim", 2)
		if len(st.Holders) > 2 {
			t.Fatalf("%d holders with limit 1 after lowering", len(st.Holders))
		}
		notYet(t, chans[2], "w2 while above the lowered limit")
	}
	if err := g2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	g3 := get(t, chans[2], "w2 once below the limit")
	notYet(t, chans[3], "w3")
	if err := semaphore.SetLimit(ctx, h.cli, "lim", -1); !errors.Is(err, semaphore.ErrBadLimit) {
		t.Fatalf("SetLimit(-1): %v, want ErrBadLimit", err)
	}
	g3.Release(ctx)
	get(t, chans[3], "w3").Release(ctx)
}

// A holder whose lease is lost (not released) is told at once, and its slot
// stays taken for the quarantine before the next waiter gets it.
func TestLeaseLossQuarantinesSlot(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 60*time.Second)
	const quarantine = 2 * time.Second
	h := newParticipant(t, m, "q", semaphore.WithQuarantine(quarantine))
	g, err := h.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newParticipant(t, m, "q")
	wc := acquireAsync(ctx, w)
	waitWaiters(t, w.cli, "q", 1)

	// The lease goes away the way an expiry does: revoked by the server's
	// side, not by a release.
	lost := time.Now()
	if _, err := w.cli.Revoke(ctx, h.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close after the holder's lease was revoked")
	}
	if g.Context().Err() == nil {
		t.Fatal("grant context not cancelled")
	}
	resp, err := w.cli.Txn(ctx).If(g.Cmp()).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("Cmp of a lost grant: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	st, err := semaphore.GetStatus(ctx, w.cli, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 1 || !st.Holders[0].Quarantined {
		t.Fatalf("status after lease loss: %+v, want one quarantined holder", st.Holders)
	}
	gw := get(t, wc, "waiter after quarantine")
	if d := time.Since(lost); d < quarantine {
		t.Fatalf("waiter admitted %v after the lease was lost, before the %v quarantine", d, quarantine)
	}
	gw.Release(ctx)
}

// A voluntary release frees the slot at once; quarantine is only for loss.
// A holder that lost its lease may still release its quarantined slot.
func TestReleaseSkipsQuarantine(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 60*time.Second)
	h := newParticipant(t, m, "rq", semaphore.WithQuarantine(time.Hour))
	g, err := h.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newParticipant(t, m, "rq")
	wc := acquireAsync(ctx, w)
	waitWaiters(t, w.cli, "rq", 1)
	if _, err := h.cli.Revoke(ctx, h.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	<-g.Done()
	notYet(t, wc, "waiter during an hour of quarantine")
	if err := g.Release(ctx); err != nil {
		t.Fatalf("release of the quarantined slot by its holder: %v", err)
	}
	get(t, wc, "waiter after the holder released its quarantined slot").Release(ctx)
}

func TestReentrantAndAdoption(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 60*time.Second)
	a := newParticipant(t, m, "re", semaphore.WithHolderID("node-1"), semaphore.WithQuarantine(time.Hour))
	g1, err := a.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := a.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g1.Token != g2.Token {
		t.Fatalf("re-entrant acquire: token %d, want %d", g2.Token, g1.Token)
	}
	// Another process with the same holder ID gets the same grant too.
	a2 := newParticipant(t, m, "re", semaphore.WithHolderID("node-1"))
	g3, err := a2.sem.TryAcquire(ctx)
	if err != nil || g3.Token != g1.Token {
		t.Fatalf("same ID from another session: token %v err %v, want %d", g3, err, g1.Token)
	}
	g3.Release(ctx) // releases the one slot node-1 holds
	<-g1.Done()

	// node-1 takes the slot again, then "reboots": its lease is lost and
	// its slot quarantined for an hour; a waiter queues behind it.
	g4, err := a.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newParticipant(t, m, "re")
	wc := acquireAsync(ctx, w)
	waitWaiters(t, w.cli, "re", 1)
	if _, err := w.cli.Revoke(ctx, a.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	<-g4.Done()
	// Back from the reboot, with a new session: node-1 takes its own slot
	// back without queueing, with a new token.
	back := newParticipant(t, m, "re", semaphore.WithHolderID("node-1"))
	g5, err := back.sem.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("node-1 taking back its quarantined slot: %v", err)
	}
	if g5.Token <= g4.Token {
		t.Fatalf("adopted slot token %d not above %d", g5.Token, g4.Token)
	}
	notYet(t, wc, "waiter while node-1 holds again")
	st, _ := semaphore.GetStatus(ctx, w.cli, "re")
	if len(st.Holders) != 1 || st.Holders[0].Quarantined || st.Holders[0].Token != g5.Token {
		t.Fatalf("status after adoption: %+v", st.Holders)
	}
	g5.Release(ctx)
	get(t, wc, "waiter").Release(ctx)
}

func TestForceRelease(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 30*time.Second)
	h := newParticipant(t, m, "fr", semaphore.WithHolderID("stuck"))
	g, err := h.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newParticipant(t, m, "fr")
	wc := acquireAsync(ctx, w)
	waitWaiters(t, w.cli, "fr", 1)
	if err := semaphore.ForceRelease(ctx, w.cli, "fr", "stuck"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("force-released holder not told")
	}
	gw := get(t, wc, "waiter after force release")
	if err := semaphore.ForceRelease(ctx, w.cli, "fr", "stuck"); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("second force release: %v, want ErrNotHeld", err)
	}
	if err := g.Release(ctx); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("release after force release: %v, want ErrNotHeld", err)
	}
	gw.Release(ctx)
}

func TestCancelLeavesQueue(t *testing.T) {
	m := coordtest.StartSingle(t)
	ctx := ctxT(t, 30*time.Second)
	h := newParticipant(t, m, "cq")
	g, err := h.sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newParticipant(t, m, "cq")
	wctx, cancel := context.WithCancel(ctx)
	wc := acquireAsync(wctx, w)
	waitWaiters(t, h.cli, "cq", 1)
	cancel()
	if r := <-wc; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", r.err)
	}
	waitWaiters(t, h.cli, "cq", 0)
	g.Release(ctx)
}

func TestBadNames(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	sess, err := concurrency.NewSession(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, name := range []string{"", "a/b", "x\n", string(make([]byte, 300))} {
		if _, err := semaphore.New(sess, name); !errors.Is(err, semaphore.ErrBadName) {
			t.Errorf("New(%q): %v, want ErrBadName", name, err)
		}
	}
	if _, err := semaphore.New(sess, "ok", semaphore.WithHolderID("a/b")); !errors.Is(err, semaphore.ErrBadName) {
		t.Errorf("holder ID with '/': %v, want ErrBadName", err)
	}
	if _, err := semaphore.New(sess, "ok", semaphore.WithLimit(-2)); !errors.Is(err, semaphore.ErrBadLimit) {
		t.Errorf("negative limit: %v, want ErrBadLimit", err)
	}
	ctx := ctxT(t, 10*time.Second)
	if _, err := cli.Put(ctx, semaphore.DefaultPrefix+"garbled/limit", "three"); err != nil {
		t.Fatal(err)
	}
	s, err := semaphore.New(sess, "garbled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx); !errors.Is(err, semaphore.ErrBadLimit) {
		t.Errorf("acquire with a garbled stored limit: %v, want ErrBadLimit", err)
	}
}
