// Package semaphoretest is the semaphore's semantic test suite, run
// against any etcd v3 endpoint: coordd in the semaphore package's tests,
// a real etcd in tests/compat.
package semaphoretest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Ctx returns a context that ends after d or with the test.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Participant is one holder: its own client and session.
type Participant struct {
	Cli  *clientv3.Client
	Sess *concurrency.Session
	Sem  *semaphore.Semaphore
}

// NewParticipant connects a holder with a 5-second session.
func NewParticipant(t *testing.T, env Env, name string, opts ...semaphore.Option) *Participant {
	t.Helper()
	return NewParticipantTTL(t, env, name, 5, opts...)
}

// NewParticipantTTL connects a holder with a session of ttl seconds.
func NewParticipantTTL(t *testing.T, env Env, name string, ttl int, opts ...semaphore.Option) *Participant {
	t.Helper()
	cli := env.Connect(t)
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
	return &Participant{Cli: cli, Sess: sess, Sem: sem}
}

// Result is the outcome of an Acquire.
type Result struct {
	G   *semaphore.Grant
	Err error
}

// AcquireAsync starts Acquire and returns a channel with its result.
func AcquireAsync(ctx context.Context, p *Participant) <-chan Result {
	ch := make(chan Result, 1)
	go func() {
		g, err := p.Sem.Acquire(ctx)
		ch <- Result{G: g, Err: err}
	}()
	return ch
}

// WaitWaiters polls the status until n waiters are queued.
func WaitWaiters(t *testing.T, cli *clientv3.Client, name string, n int) *semaphore.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := semaphore.GetStatus(Ctx(t, 5*time.Second), cli, name)
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

func notYet(t *testing.T, ch <-chan Result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: admitted (%v) while it must wait", what, r.Err)
	default:
	}
}

// Await returns the grant of an AcquireAsync, failing the test on an error
// or after 15 seconds.
func Await(t *testing.T, ch <-chan Result, what string) *semaphore.Grant {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			t.Fatalf("%s: %v", what, r.Err)
		}
		return r.G
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: not admitted after 15s", what)
		return nil
	}
}

func testLimitTryAcquireAndRelease(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	a := NewParticipant(t, env, "jobs", semaphore.WithLimit(2))
	b := NewParticipant(t, env, "jobs", semaphore.WithLimit(2))
	c := NewParticipant(t, env, "jobs", semaphore.WithLimit(5)) // the stored limit wins

	ga, err := a.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.Sem.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gb.Token <= ga.Token {
		t.Fatalf("tokens %d then %d: not increasing", ga.Token, gb.Token)
	}
	if _, err := c.Sem.TryAcquire(ctx); !errors.Is(err, semaphore.ErrNoSlot) {
		t.Fatalf("third TryAcquire of 2 slots: err = %v, want ErrNoSlot", err)
	}
	st := WaitWaiters(t, a.Cli, "jobs", 0) // TryAcquire left no queue entry
	if st.Limit != 2 || len(st.Holders) != 2 {
		t.Fatalf("status: limit %d, %d holders; want 2, 2", st.Limit, len(st.Holders))
	}

	cc := AcquireAsync(ctx, c)
	WaitWaiters(t, a.Cli, "jobs", 1)
	notYet(t, cc, "c")
	if err := ga.Release(ctx); err != nil {
		t.Fatal(err)
	}
	gc := Await(t, cc, "c after a released")
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
		resp, err := a.Cli.Txn(ctx).If(tc.g.Cmp()).Commit()
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
	if st, _ := semaphore.GetStatus(ctx, a.Cli, "jobs"); len(st.Holders) != 2 {
		t.Fatalf("%d holders after a stale release, want 2", len(st.Holders))
	}
	gb.Release(ctx)
	gc.Release(ctx)
}

func testFIFO(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	first := NewParticipant(t, env, "fifo")
	g, err := first.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var chans []<-chan Result
	var ids []string
	for i := range n {
		p := NewParticipant(t, env, "fifo", semaphore.WithHolderID(fmt.Sprintf("w%d", i)))
		chans = append(chans, AcquireAsync(ctx, p))
		ids = append(ids, p.Sem.HolderID())
		WaitWaiters(t, first.Cli, "fifo", i+1) // w_i queued before w_i+1 asks
	}
	st := WaitWaiters(t, first.Cli, "fifo", n)
	for i, w := range st.Waiters {
		if w.ID != ids[i] {
			t.Fatalf("waiter %d is %s, want %s", i, w.ID, ids[i])
		}
	}
	for i := range n {
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		g = Await(t, chans[i], ids[i])
		for j := i + 1; j < n; j++ {
			notYet(t, chans[j], ids[j])
		}
	}
	g.Release(ctx)
}

func testSetLimit(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	h := NewParticipant(t, env, "lim")
	g0, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan Result
	for i := range 4 {
		chans = append(chans, AcquireAsync(ctx, NewParticipant(t, env, "lim")))
		WaitWaiters(t, h.Cli, "lim", i+1)
	}
	// Raising 1 -> 3 admits the next two waiters at once.
	if err := semaphore.SetLimit(ctx, h.Cli, "lim", 3); err != nil {
		t.Fatal(err)
	}
	g1, g2 := Await(t, chans[0], "w0"), Await(t, chans[1], "w1")
	WaitWaiters(t, h.Cli, "lim", 2)
	notYet(t, chans[2], "w2")

	// Lowering 3 -> 1: the three holders keep their slots; releases do not
	// admit anyone until fewer than 1 slot is taken.
	if err := semaphore.SetLimit(ctx, h.Cli, "lim", 1); err != nil {
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
		st := WaitWaiters(t, h.Cli, "lim", 2)
		if len(st.Holders) > 2 {
			t.Fatalf("%d holders with limit 1 after lowering", len(st.Holders))
		}
		notYet(t, chans[2], "w2 while above the lowered limit")
	}
	if err := g2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	g3 := Await(t, chans[2], "w2 once below the limit")
	notYet(t, chans[3], "w3")
	if err := semaphore.SetLimit(ctx, h.Cli, "lim", -1); !errors.Is(err, semaphore.ErrBadLimit) {
		t.Fatalf("SetLimit(-1): %v, want ErrBadLimit", err)
	}
	g3.Release(ctx)
	Await(t, chans[3], "w3").Release(ctx)
}

// A holder whose lease is lost (not released) is told at once, and its slot
// stays taken for the quarantine before the next waiter gets it.
func testLeaseLossQuarantinesSlot(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	const quarantine = 2 * time.Second
	h := NewParticipant(t, env, "q", semaphore.WithQuarantine(quarantine))
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "q")
	wc := AcquireAsync(ctx, w)
	WaitWaiters(t, w.Cli, "q", 1)

	// The lease goes away the way an expiry does: revoked by the server's
	// side, not by a release.
	lost := time.Now()
	if _, err := w.Cli.Revoke(ctx, h.Sess.Lease()); err != nil {
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
	resp, err := w.Cli.Txn(ctx).If(g.Cmp()).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("Cmp of a lost grant: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	st, err := semaphore.GetStatus(ctx, w.Cli, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 1 || !st.Holders[0].Quarantined {
		t.Fatalf("status after lease loss: %+v, want one quarantined holder", st.Holders)
	}
	gw := Await(t, wc, "waiter after quarantine")
	if d := time.Since(lost); d < quarantine {
		t.Fatalf("waiter admitted %v after the lease was lost, before the %v quarantine", d, quarantine)
	}
	gw.Release(ctx)
}

// A voluntary release frees the slot at once; quarantine is only for loss.
// A holder that lost its lease may still release its quarantined slot.
func testReleaseSkipsQuarantine(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	h := NewParticipant(t, env, "rq", semaphore.WithQuarantine(time.Hour))
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "rq")
	wc := AcquireAsync(ctx, w)
	WaitWaiters(t, w.Cli, "rq", 1)
	if _, err := h.Cli.Revoke(ctx, h.Sess.Lease()); err != nil {
		t.Fatal(err)
	}
	<-g.Done()
	notYet(t, wc, "waiter during an hour of quarantine")
	if err := g.Release(ctx); err != nil {
		t.Fatalf("release of the quarantined slot by its holder: %v", err)
	}
	Await(t, wc, "waiter after the holder released its quarantined slot").Release(ctx)
}

func testReentrantAndAdoption(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	a := NewParticipant(t, env, "re", semaphore.WithHolderID("node-1"), semaphore.WithQuarantine(time.Hour))
	g1, err := a.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := a.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g1.Token != g2.Token {
		t.Fatalf("re-entrant acquire: token %d, want %d", g2.Token, g1.Token)
	}
	// Another process with the same holder ID gets the same grant too.
	a2 := NewParticipant(t, env, "re", semaphore.WithHolderID("node-1"))
	g3, err := a2.Sem.TryAcquire(ctx)
	if err != nil || g3.Token != g1.Token {
		t.Fatalf("same ID from another session: token %v err %v, want %d", g3, err, g1.Token)
	}
	g3.Release(ctx) // releases the one slot node-1 holds
	<-g1.Done()

	// node-1 takes the slot again, then "reboots": its lease is lost and
	// its slot quarantined for an hour; a waiter queues behind it.
	g4, err := a.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "re")
	wc := AcquireAsync(ctx, w)
	WaitWaiters(t, w.Cli, "re", 1)
	if _, err := w.Cli.Revoke(ctx, a.Sess.Lease()); err != nil {
		t.Fatal(err)
	}
	<-g4.Done()
	// Back from the reboot, with a new session: node-1 takes its own slot
	// back without queueing, with a new token.
	back := NewParticipant(t, env, "re", semaphore.WithHolderID("node-1"))
	g5, err := back.Sem.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("node-1 taking back its quarantined slot: %v", err)
	}
	if g5.Token <= g4.Token {
		t.Fatalf("adopted slot token %d not above %d", g5.Token, g4.Token)
	}
	notYet(t, wc, "waiter while node-1 holds again")
	st, _ := semaphore.GetStatus(ctx, w.Cli, "re")
	if len(st.Holders) != 1 || st.Holders[0].Quarantined || st.Holders[0].Token != g5.Token {
		t.Fatalf("status after adoption: %+v", st.Holders)
	}
	g5.Release(ctx)
	Await(t, wc, "waiter").Release(ctx)
}

func testForceRelease(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	h := NewParticipant(t, env, "fr", semaphore.WithHolderID("stuck"))
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "fr")
	wc := AcquireAsync(ctx, w)
	WaitWaiters(t, w.Cli, "fr", 1)
	if err := semaphore.ForceRelease(ctx, w.Cli, "fr", "stuck"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("force-released holder not told")
	}
	gw := Await(t, wc, "waiter after force release")
	if err := semaphore.ForceRelease(ctx, w.Cli, "fr", "stuck"); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("second force release: %v, want ErrNotHeld", err)
	}
	if err := g.Release(ctx); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("release after force release: %v, want ErrNotHeld", err)
	}
	gw.Release(ctx)
}

func testCancelLeavesQueue(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	h := NewParticipant(t, env, "cq")
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "cq")
	wctx, cancel := context.WithCancel(ctx)
	wc := AcquireAsync(wctx, w)
	WaitWaiters(t, h.Cli, "cq", 1)
	cancel()
	if r := <-wc; !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", r.Err)
	}
	WaitWaiters(t, h.Cli, "cq", 0)
	g.Release(ctx)
}

func testBadNames(t *testing.T, env Env) {
	cli := env.Connect(t)
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
	ctx := Ctx(t, 10*time.Second)
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

// Env connects the suite to the cluster under test.
type Env struct {
	// Connect returns a new client; the suite closes it.
	Connect func(t *testing.T) *clientv3.Client
}

// Run runs every scenario of the suite as a subtest.
func Run(t *testing.T, env Env) {
	for _, sc := range []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"LimitTryAcquireAndRelease", testLimitTryAcquireAndRelease},
		{"FIFO", testFIFO},
		{"SetLimit", testSetLimit},
		{"LeaseLossQuarantinesSlot", testLeaseLossQuarantinesSlot},
		{"ReleaseSkipsQuarantine", testReleaseSkipsQuarantine},
		{"ReentrantAndAdoption", testReentrantAndAdoption},
		{"ForceRelease", testForceRelease},
		{"CancelLeavesQueue", testCancelLeavesQueue},
		{"BadNames", testBadNames},
		{"Persistent", testPersistent},
		{"SharedParticipant", testSharedParticipant},
		{"TryAcquireFreesExpired", testTryAcquireFreesExpired},
		{"NoLeftoversAfterTimeouts", testNoLeftoversAfterTimeouts},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.fn(t, env) })
	}
}

// A persistent grant outlives its session: the slot stays held by holder ID
// until that ID releases it, from another session.
func testPersistent(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	p := NewParticipant(t, env, "persist", semaphore.WithPersistent(), semaphore.WithHolderID("node-a"))
	g, err := p.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cli.Revoke(ctx, p.Sess.Lease()); err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "persist")
	if _, err := w.Sem.TryAcquire(ctx); !errors.Is(err, semaphore.ErrNoSlot) {
		t.Fatalf("TryAcquire while a persistent grant's session is gone: %v, want ErrNoSlot", err)
	}
	st, err := semaphore.GetStatus(ctx, w.Cli, "persist")
	if err != nil || len(st.Holders) != 1 || st.Holders[0].Quarantined || st.Holders[0].Token != g.Token {
		t.Fatalf("status: %+v %v, want node-a holding token %d", st, err, g.Token)
	}
	select {
	case <-g.Done():
		t.Fatal("persistent grant ended with its session")
	default:
	}
	// After a "reboot": the same ID, a new session, re-enters and releases.
	back := NewParticipant(t, env, "persist", semaphore.WithPersistent(), semaphore.WithHolderID("node-a"))
	g2, err := back.Sem.TryAcquire(ctx)
	if err != nil || g2.Token != g.Token {
		t.Fatalf("re-entry after the reboot: %v, %v; want token %d", g2, err, g.Token)
	}
	if err := back.Sem.Release(ctx); err != nil {
		t.Fatal(err)
	}
	ClosedWithin(t, g.Done(), 5*time.Second, "persistent grant's Done after release")
	gw, err := w.Sem.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("slot not free after the release: %v", err)
	}
	gw.Release(ctx)
	g2.Release(ctx)
}

// ClosedWithin fails the test unless ch closes within d.
func ClosedWithin(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not closed after %v", what, d)
	}
}

// Two calls of one participant share its queue entry: one giving up (a
// TryAcquire that finds no slot) must not take the other out of the queue.
func testSharedParticipant(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	h := NewParticipant(t, env, "shared")
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "shared")
	wc := AcquireAsync(ctx, w)
	WaitWaiters(t, w.Cli, "shared", 1)
	if _, err := w.Sem.TryAcquire(ctx); !errors.Is(err, semaphore.ErrNoSlot) {
		t.Fatalf("TryAcquire beside a waiting Acquire: %v, want ErrNoSlot", err)
	}
	WaitWaiters(t, w.Cli, "shared", 1) // still queued
	g.Release(ctx)
	Await(t, wc, "the waiting Acquire").Release(ctx)
}

// A caller that only tries moves expired slots on itself: with no
// quarantine, a slot whose holder's lease is gone is free to it at once.
func testTryAcquireFreesExpired(t *testing.T, env Env) {
	ctx := Ctx(t, 30*time.Second)
	h := NewParticipant(t, env, "tryfree", semaphore.WithQuarantine(0))
	if _, err := h.Sem.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Cli.Revoke(ctx, h.Sess.Lease()); err != nil {
		t.Fatal(err)
	}
	w := NewParticipant(t, env, "tryfree")
	g, err := w.Sem.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire after the only holder's lease went (no quarantine): %v", err)
	}
	g.Release(ctx)
}

// Acquires whose context ends at any moment leave no queue entry and no
// slot behind: afterwards the semaphore is empty and free.
func testNoLeftoversAfterTimeouts(t *testing.T, env Env) {
	ctx := Ctx(t, 60*time.Second)
	h := NewParticipant(t, env, "timeouts")
	g, err := h.Sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(150*time.Millisecond, func() { g.Release(ctx) })
	defer release.Stop()
	w := NewParticipant(t, env, "timeouts")
	for i := range 60 {
		actx, cancel := context.WithTimeout(ctx, time.Duration(i%6)*time.Millisecond)
		if g2, err := w.Sem.Acquire(actx); err == nil {
			g2.Release(ctx)
		}
		cancel()
	}
	st, err := semaphore.GetStatus(ctx, w.Cli, "timeouts")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for (len(st.Waiters) > 0 || len(st.Holders) > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if st, err = semaphore.GetStatus(ctx, w.Cli, "timeouts"); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.Waiters) > 0 || len(st.Holders) > 0 {
		t.Fatalf("after timed-out Acquires: %d waiters, %d holders (%+v); want none (holder lease %x, waiter lease %x)", len(st.Waiters), len(st.Holders), st.Holders, h.Sess.Lease(), w.Sess.Lease())
	}
}
