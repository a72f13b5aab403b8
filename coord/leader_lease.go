package coord

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A keep-alive extends a lease only on a leader that knows it still leads
// (etcd 15247: a deposed leader's renewals would let a client trust a lease
// the new leader expires on its own clock). Confirming that with a round of
// heartbeats for every batch of renewals made keep-alives on a 3-member
// cluster wait a round trip to the followers each; leases depend on clocks
// anyway, so renewals use a leader lease instead, as the Raft thesis
// (section 6.4.1) describes for reads.
//
// The argument, for hashicorp/raft as coordd runs it. A confirmation that
// began at t succeeded because a quorum of followers accepted a heartbeat
// of this leader's term sent after t; each of them had heard from its
// leader at t or later. A follower refuses to vote for any other candidate
// while it knows a leader, and it forgets its leader only once it has
// heard nothing for a whole heartbeat timeout (the election timeout in
// coordd; campaignClock never shortens it). The leader itself refuses every
// vote while it leads, and steps down for silence only after the same
// timeout. Every quorum that could elect another leader includes one of
// these members, so none exists before t plus the election timeout, and a
// new leader gives every lease a full TTL only after that. Renewals after a
// confirmation that began at t are answered until t + leaseWindow, half the
// election timeout: the other half covers the delivery of the answer and
// any difference in the rate of the members' clocks.
//
// Three things would break the argument, and each ends the lease:
//   - A leadership transfer makes the followers vote despite knowing a
//     leader. While one runs, and for leaseHoldAfterTransfer after it ends
//     (a candidate that got the transfer keeps its privilege for one
//     election, under two election timeouts), renewals confirm each time.
//   - A configuration change makes a quorum of other members. A
//     confirmation counts only if no change began since it began (gen).
//   - A follower that restarts has forgotten its leader at once. A member
//     that restarts on its data refuses raft connections for an election
//     timeout (peerStream's quiet period), so it votes for no one sooner
//     than it would have if it had stayed up.
//
// Linearizable reads do not use the lease: their guarantee does not rest
// on clocks, as etcd's default does not.

// leaseWindowFraction sets how long after a confirmation began renewals are
// answered without another one: the election timeout divided by it.
const leaseWindowFraction = 2

// leaseHoldAfterTransfer, in election timeouts, is how long after a
// leadership transfer ends renewals confirm each time.
const leaseHoldAfterTransfer = 3

// confirmation is a leadership confirmation that succeeded.
type confirmation struct {
	term  uint64    // the term this member led in
	gen   uint64    // readIndex.gen when it began
	began time.Time // when it began (monotonic)
}

// leaderLease is readIndex's memory of its latest confirmation.
type leaderLease struct {
	window time.Duration
	now    func() time.Time

	last       atomic.Pointer[confirmation]
	gen        atomic.Uint64 // bumped when a configuration change or a transfer begins and ends
	holdUntil  atomic.Int64  // unix nanoseconds before which the lease is not used; -1 while a transfer runs
	refreshing atomic.Bool   // a renewal is confirming to refresh the lease
}

func newLeaderLease(electionTimeout time.Duration) *leaderLease {
	return &leaderLease{window: electionTimeout / leaseWindowFraction, now: time.Now}
}

// begin returns what a confirmation starting now records if it succeeds.
func (l *leaderLease) begin(term uint64) confirmation {
	return confirmation{term: term, gen: l.gen.Load(), began: l.now()}
}

// confirmed records a confirmation that succeeded, unless one that began
// later (or after a change began) is recorded already.
func (l *leaderLease) confirmed(c confirmation) {
	for {
		old := l.last.Load()
		if old != nil && old.term == c.term && (c.gen < old.gen || c.gen == old.gen && !c.began.After(old.began)) {
			return
		}
		if l.last.CompareAndSwap(old, &c) {
			return
		}
	}
}

// forget ends the lease (leadership lost).
func (l *leaderLease) forget() { l.last.Store(nil) }

// age returns how long ago the confirmation the lease rests on began, and
// whether there is a lease for term at all.
func (l *leaderLease) age(term uint64) (time.Duration, bool) {
	c := l.last.Load()
	if c == nil || c.term != term || c.gen != l.gen.Load() {
		return 0, false
	}
	now := l.now()
	if hold := l.holdUntil.Load(); hold == -1 || now.UnixNano() < hold {
		return 0, false
	}
	age := now.Sub(c.began)
	return age, age >= 0 && age < l.window
}

// changing ends the lease for a configuration change or a transfer that is
// about to begin; done must be called when it ended.
func (l *leaderLease) changing() (done func()) {
	l.gen.Add(1)
	return func() { l.gen.Add(1) }
}

// transferring ends the lease for a leadership transfer and holds it off
// until leaseHoldAfterTransfer election timeouts after the transfer ended.
func (l *leaderLease) transferring(electionTimeout time.Duration) (done func()) {
	l.holdUntil.Store(-1)
	end := l.changing()
	return func() {
		end()
		l.holdUntil.Store(l.now().Add(leaseHoldAfterTransfer * electionTimeout).UnixNano())
	}
}

// waitRenew returns once this member may renew a lease: it leads, has
// committed in its term, and either holds a leader lease or confirmed its
// leadership now. Unlike wait it does not wait for the store to apply
// anything: a lease's grant was applied before it was answered.
func (ri *readIndex) waitRenew(ctx context.Context) error {
	select {
	case <-ri.s.stopc:
		// Stopping: raft may lead on while gRPC drains, but a member on
		// its way down renews nothing, so its clients move on at once.
		return ErrStopped
	default:
	}
	r := ri.s.node.raft
	term := ri.ready.Load()
	if ri.sole.Load() || term == 0 || r.State() != raft.Leader || term != r.CurrentTerm() {
		return ri.wait(ctx)
	}
	age, ok := ri.lease.age(term)
	if !ok {
		return ri.wait(ctx)
	}
	// Past half the window, one renewal confirms, so that the lease
	// is refreshed before it runs out and the others never wait.
	if age >= ri.lease.window/2 && ri.lease.refreshing.CompareAndSwap(false, true) {
		defer ri.lease.refreshing.Store(false)
		return ri.wait(ctx)
	}
	return nil
}

// transferLeadership runs a leadership transfer with the leader lease off.
func (s *Server) transferLeadership(transfer func() raft.Future) error {
	done := s.reads.lease.transferring(s.cfg.ElectionTimeout)
	defer done()
	return transfer().Error()
}
