package semaphore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// wakeups counts watch responses that woke a waiter, for the herd test.
var wakeups atomic.Int64

// Acquire waits for a slot and returns the grant. Waiters are admitted in
// the order they first asked. If this holder ID already holds a slot, the
// same grant is returned at once; if its slot is quarantined because its
// previous lease expired, it takes the slot back without waiting.
//
// Acquire returns ctx's error when ctx ends, and ErrSessionLost when the
// session's lease is lost while waiting; either way it leaves the queue.
func (s *Semaphore) Acquire(ctx context.Context) (*Grant, error) {
	return s.acquire(ctx, true)
}

// TryAcquire takes a slot if one is free and nobody who asked earlier is
// waiting; otherwise it returns ErrNoSlot without joining the queue.
func (s *Semaphore) TryAcquire(ctx context.Context) (*Grant, error) {
	return s.acquire(ctx, false)
}

func (s *Semaphore) acquire(ctx context.Context, wait bool) (*Grant, error) {
	s.enterQueue()
	defer s.leaveQueue()
	for {
		select {
		case <-s.session.Done():
			return nil, ErrSessionLost
		default:
		}
		queueRev, err := s.enqueueRetrying(ctx)
		if err != nil {
			// The enqueue may have committed although its answer was lost.
			s.dequeueIfLast()
			return nil, err
		}
		g, err := s.admit(ctx, queueRev, wait)
		if errors.Is(err, errQueueEntryGone) {
			continue // deleted under a live session (an operator, a takeover): queue again
		}
		if errors.Is(err, ErrSessionLost) && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			// A grant this call made may have committed although its
			// answer was lost, or its context ended while it was being
			// proven: give it back rather than hold it unknowingly.
			// Dequeue first: a grant needs the queue entry, so after it is
			// gone no grant of this call can commit, and one that did is seen.
			s.dequeueIfLast()
			s.releaseOwnGrant(queueRev)
			return nil, err
		}
		return g, nil
	}
}

// writeCtx bounds one write of the acquire path on its own, not by the
// caller's context: a write the client abandons at the caller's deadline
// may still commit after any cleanup ran, leaving a queue entry or a grant
// nobody knows about. So a caller may wait up to one write past its
// deadline, and every outcome is known.
func (s *Semaphore) writeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), writeTimeout)
}

const writeTimeout = 5 * time.Second

// errQueueEntryGone: the waiter's queue entry went while its session lives.
var errQueueEntryGone = errors.New("semaphore: queue entry gone")

// enterQueue and leaveQueue count the calls of this participant that use
// its one queue entry, so that one call giving up does not remove the
// entry another call waits on.
func (s *Semaphore) enterQueue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueUsers++
}

func (s *Semaphore) leaveQueue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueUsers--
}

func (s *Semaphore) enqueueRetrying(ctx context.Context) (int64, error) {
	for b := (backoff{}); ; {
		queueRev, err := s.enqueue(ctx)
		if err == nil {
			return queueRev, nil
		}
		if !retryable(err) {
			return 0, err
		}
		if err := b.wait(ctx, s.session.Done()); err != nil {
			return 0, err
		}
	}
}

// enqueue creates this holder's queue entry unless it exists, and returns
// its create revision, which fixes the holder's place in the queue. An
// entry of this holder ID under another lease (the same node before a
// restart) is taken over, keeping its place.
func (s *Semaphore) enqueue(ctx context.Context) (int64, error) {
	q := s.keys.queue(s.id)
	rec := record{ID: s.id, Value: s.value, Since: s.now().UTC(), Lease: int64(s.session.Lease())}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		wctx, wcancel := s.writeCtx()
		resp, err := s.cli.Txn(wctx).
			If(clientv3.Compare(clientv3.CreateRevision(q), "=", 0)).
			Then(clientv3.OpPut(q, rec.encode(), clientv3.WithLease(s.session.Lease()))).
			Else(clientv3.OpGet(q)).
			Commit()
		wcancel()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		kv := resp.Responses[0].GetResponseRange().Kvs[0]
		if clientv3.LeaseID(kv.Lease) == s.session.Lease() {
			return kv.CreateRevision, nil // another call of this participant
		}
		wctx, wcancel = s.writeCtx()
		take, err := s.cli.Txn(wctx).
			If(clientv3.Compare(clientv3.ModRevision(q), "=", kv.ModRevision)).
			Then(clientv3.OpPut(q, rec.encode(), clientv3.WithLease(s.session.Lease()))).
			Commit()
		wcancel()
		if err != nil {
			return 0, err
		}
		if take.Succeeded {
			return kv.CreateRevision, nil
		}
	}
}

// dequeueIfLast removes this session's queue entry unless another call of
// this participant still uses it. It runs when the caller's context may
// have ended, so it has its own deadline, and retries failures of the
// moment within it; if it still fails, the entry goes with the lease.
func (s *Semaphore) dequeueIfLast() {
	s.mu.Lock()
	others := s.queueUsers > 1
	s.mu.Unlock()
	if others {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := s.keys.queue(s.id)
	for b := (backoff{}); ; {
		_, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(q), "=", s.session.Lease())).
			Then(clientv3.OpDelete(q)).
			Commit()
		if err == nil || !retryable(err) || b.wait(ctx, s.session.Done()) != nil {
			return
		}
	}
}

// releaseOwnGrant gives back a grant that this call (queue entry
// queueRev) made, if one exists: it is marked with queueRev.
func (s *Semaphore) releaseOwnGrant(queueRev int64) {
	s.mu.Lock()
	others := s.queueUsers > 1 // a concurrent call may have been handed this grant
	s.mu.Unlock()
	if others {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gk := s.keys.grant(s.id)
	for b := (backoff{}); ; {
		resp, err := s.cli.Get(ctx, gk)
		if err == nil {
			if len(resp.Kvs) == 1 {
				if rec, derr := decodeRecord(resp.Kvs[0]); derr == nil && rec.QueueRev == queueRev && rec.Lease == int64(s.grantLeaseID()) {
					s.release(ctx, resp.Kvs[0].CreateRevision)
				}
			}
			return
		}
		if !retryable(err) || b.wait(ctx, s.session.Done()) != nil {
			return
		}
	}
}

// admit loops: read the semaphore, take a slot if this waiter may, else
// wait for the one change that can let it in. Only the head of the queue
// watches the slots; every other waiter watches the waiter just before it,
// so a release wakes one waiter, not all of them.
func (s *Semaphore) admit(ctx context.Context, queueRev int64, wait bool) (*Grant, error) {
	var b backoff
	for {
		g, done, err := s.admitStep(ctx, queueRev, wait)
		if done {
			return g, err
		}
		if err != nil {
			// A leader change or a lost connection: every step is safe to
			// repeat, because each one reads first and writes with a txn
			// guarded by what it read (a grant that committed although its
			// answer was lost is found as this holder's grant).
			if !retryable(err) {
				return nil, err
			}
			if err := b.wait(ctx, s.session.Done()); err != nil {
				return nil, err
			}
			continue
		}
		b.reset()
	}
}

// admitStep reads the semaphore once and acts on it: it returns done with
// the grant or a final error, or not done (err being a retryable error or
// nil) when the caller should read again.
func (s *Semaphore) admitStep(ctx context.Context, queueRev int64, wait bool) (_ *Grant, done bool, _ error) {
	st, err := s.readState(ctx, queueRev)
	if err != nil {
		return nil, false, err
	}
	if g := st.grants[s.id]; g != nil && st.slot(s.id) != nil {
		// Re-entrant: this holder ID holds a slot already.
		g, err := s.existingGrant(ctx, st, queueRev)
		return g, g != nil || !retryable(err), err
	}
	if st.queueRev != queueRev {
		select {
		case <-s.session.Done():
			return nil, true, ErrSessionLost
		default:
			return nil, true, errQueueEntryGone
		}
	}
	if st.limitMod == 0 {
		return nil, false, s.createLimit(ctx)
	}
	if sl := st.slot(s.id); sl != nil && !sl.live {
		g, err := s.adopt(ctx, sl, queueRev)
		return g, g != nil, err
	}
	if st.aheadCapped && st.free() > st.ahead {
		// More slots than this read counted waiters for: count again.
		return nil, false, nil
	}
	if st.ahead < st.free() {
		g, err := s.take(ctx, st, queueRev)
		return g, g != nil, err // no grant, no error: something changed since the read
	}
	if !wait {
		// Nobody waits to tend expired slots for a caller that only
		// tries: first in line, it moves them on itself.
		if st.ahead == 0 {
			freed, err := s.tendQuarantine(ctx, st)
			if err != nil {
				return nil, false, err
			}
			if freed {
				return nil, false, nil // read again: a slot may be free now
			}
		}
		return nil, true, ErrNoSlot
	}
	if st.ahead == 0 {
		if _, err := s.tendQuarantine(ctx, st); err != nil {
			return nil, false, err
		}
		from, to := s.keys.stateRange()
		err = s.waitChange(ctx, st.rev, from, clientv3.WithRange(to))
	} else {
		err = s.waitChange(ctx, st.rev, st.pred, clientv3.WithFilterPut())
	}
	done, err = afterWait(ctx, err)
	return nil, done, err
}

// afterWait decides what a waiter does once waitChange returned err: stop
// (done) with an error, or read the state again. waitChange may have seen a
// change (err nil) just as ctx ended: that is done, with ctx's error, so
// Acquire never returns no grant and no error.
func afterWait(ctx context.Context, err error) (done bool, _ error) {
	if errors.Is(err, ErrSessionLost) {
		return true, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return true, cerr
	}
	return false, err
}

// waitChange blocks until the watched keys change after rev, ctx ends or
// the session is lost.
func (s *Semaphore) waitChange(ctx context.Context, rev int64, key string, opts ...clientv3.OpOption) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, key, append(opts, clientv3.WithRev(rev+1))...)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.session.Done():
			return ErrSessionLost
		case wr, ok := <-wch:
			if !ok {
				// The client closed or the watch was cancelled (compaction,
				// no leader): read again rather than trust anything.
				if err := ctx.Err(); err != nil {
					return err
				}
				return s.cli.Ctx().Err()
			}
			if wr.Canceled || wr.CompactRevision != 0 || len(wr.Events) > 0 {
				wakeups.Add(1)
				return nil
			}
			// A progress notification: nothing changed.
		}
	}
}

// createLimit stores the limit of WithLimit if no limit is stored yet.
func (s *Semaphore) createLimit(ctx context.Context) error {
	k := s.keys.limit()
	_, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, strconv.Itoa(s.limit))).
		Commit()
	return err
}

// take grants this waiter a free slot. The txn holds only if, since the
// read: no slot was taken or re-taken (every occupancy key is older than
// the read; deletions only free slots), the limit did not change, and the
// waiter is still queued. So the number of taken slots never exceeds the
// limit, whatever else runs at the same time. It returns nil, nil when the
// txn failed and the caller should read again.
func (s *Semaphore) take(ctx context.Context, st *state, queueRev int64) (*Grant, error) {
	qs, err := s.quarantineSeconds(ctx)
	if err != nil {
		return nil, err
	}
	gk, ok, q := s.keys.grant(s.id), s.keys.occ(s.id), s.keys.queue(s.id)
	rec := s.holderRecord(queueRev)
	wctx, wcancel := s.writeCtx()
	resp, err := s.cli.Txn(wctx).
		If(
			clientv3.Compare(clientv3.CreateRevision(q), "=", queueRev),
			clientv3.Compare(clientv3.ModRevision(s.keys.occPrefix()), "<", st.rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(s.keys.limit()), "=", st.limitMod),
			clientv3.Compare(clientv3.CreateRevision(gk), "=", 0),
		).
		Then(
			clientv3.OpPut(gk, rec.encode(), s.grantLease()...),
			clientv3.OpPut(ok, s.occRecord(rec, qs).encode()),
			clientv3.OpDelete(q),
		).
		Commit()
	wcancel()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, nil
	}
	// The token is the revision of this txn, the grant key's create
	// revision (the txn cannot write its own revision into a value).
	return s.newGrant(ctx, resp.Header.Revision, resp.Header.Revision, s.grantLeaseID())
}

// adopt gives this holder back its own quarantined slot: its previous
// lease expired, but the slot is still taken in its name. No other waiter
// loses anything, so it does not queue.
func (s *Semaphore) adopt(ctx context.Context, sl *slot, queueRev int64) (*Grant, error) {
	qs, err := s.quarantineSeconds(ctx)
	if err != nil {
		return nil, err
	}
	gk, ok, q := s.keys.grant(s.id), s.keys.occ(s.id), s.keys.queue(s.id)
	rec := s.holderRecord(queueRev)
	wctx, wcancel := s.writeCtx()
	resp, err := s.cli.Txn(wctx).
		If(
			clientv3.Compare(clientv3.CreateRevision(q), "=", queueRev),
			clientv3.Compare(clientv3.ModRevision(ok), "=", sl.occ.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(gk), "=", 0),
		).
		Then(
			clientv3.OpPut(gk, rec.encode(), s.grantLease()...),
			clientv3.OpPut(ok, s.occRecord(rec, qs).encode()),
			clientv3.OpDelete(s.keys.quar(s.id)),
			clientv3.OpDelete(q),
		).
		Commit()
	wcancel()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, nil
	}
	return s.newGrant(ctx, resp.Header.Revision, resp.Header.Revision, s.grantLeaseID())
}

// existingGrant returns the grant this holder ID holds already, and leaves
// the queue entry this call made.
func (s *Semaphore) existingGrant(ctx context.Context, st *state, queueRev int64) (*Grant, error) {
	s.dequeueIfLast()
	g := st.grants[s.id]
	return s.newGrant(ctx, g.CreateRevision, st.rev, clientv3.LeaseID(g.Lease))
}

func (s *Semaphore) holderRecord(queueRev int64) record {
	return record{ID: s.id, Value: s.value, Since: s.now().UTC(), Lease: int64(s.grantLeaseID()), QueueRev: queueRev}
}

// grantLeaseID is the lease grants are bound to: the session's, or none
// for a persistent semaphore participant.
func (s *Semaphore) grantLeaseID() clientv3.LeaseID {
	if s.persistent {
		return clientv3.NoLease
	}
	return s.session.Lease()
}

func (s *Semaphore) grantLease() []clientv3.OpOption {
	if s.persistent {
		return nil
	}
	return []clientv3.OpOption{clientv3.WithLease(s.session.Lease())}
}

func (s *Semaphore) occRecord(r record, quarantineSecs int64) record {
	r.QuarantineSeconds = quarantineSecs
	return r
}

// quarantineSeconds resolves the quarantine in whole seconds (a lease
// measures it): WithQuarantine rounded up, or the session's granted TTL.
func (s *Semaphore) quarantineSeconds(ctx context.Context) (int64, error) {
	s.mu.Lock()
	known, set, q := s.quarantineSecs, s.quarantineSet, s.quarantine
	s.mu.Unlock()
	if known >= 0 {
		return known, nil
	}
	secs := int64(math.Ceil(q.Seconds()))
	if !set {
		resp, err := s.cli.TimeToLive(ctx, s.session.Lease())
		if err != nil {
			return 0, err
		}
		if resp.TTL <= 0 || resp.GrantedTTL <= 0 {
			return 0, ErrSessionLost
		}
		secs = resp.GrantedTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quarantineSecs = secs
	return secs, nil
}

// tendQuarantine moves each slot whose grant expired (occupancy without a
// grant) one step: start its quarantine with a lease of the holder's
// quarantine TTL, or, once that lease's key is gone, free the slot. Only
// the head of the queue does this, so waiters do not race each other; each
// step is a txn guarded by the occupancy key's revision, so a holder
// adopting its slot meanwhile wins.
func (s *Semaphore) tendQuarantine(ctx context.Context, st *state) (freed bool, err error) {
	for _, sl := range st.slots {
		if sl.live || sl.quarantining {
			continue
		}
		if sl.rec.QuarantineLease != 0 || sl.rec.QuarantineSeconds == 0 {
			ok, err := s.freeOrphan(ctx, sl)
			if err != nil {
				return freed, err
			}
			freed = freed || ok
			continue
		}
		if err := s.startQuarantine(ctx, sl); err != nil {
			return freed, err
		}
	}
	return freed, nil
}

func (s *Semaphore) freeOrphan(ctx context.Context, sl slot) (bool, error) {
	resp, err := s.cli.Txn(ctx).
		If(
			clientv3.Compare(clientv3.ModRevision(s.keys.occ(sl.id)), "=", sl.occ.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(s.keys.grant(sl.id)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.keys.quar(sl.id)), "=", 0),
		).
		Then(clientv3.OpDelete(s.keys.occ(sl.id))).
		Commit()
	return err == nil && resp.Succeeded, err
}

func (s *Semaphore) startQuarantine(ctx context.Context, sl slot) error {
	lease, err := s.cli.Grant(ctx, sl.rec.QuarantineSeconds)
	if err != nil {
		return fmt.Errorf("semaphore: quarantine lease: %w", err)
	}
	rec := sl.rec
	rec.QuarantineLease = int64(lease.ID)
	resp, err := s.cli.Txn(ctx).
		If(
			clientv3.Compare(clientv3.ModRevision(s.keys.occ(sl.id)), "=", sl.occ.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(s.keys.grant(sl.id)), "=", 0),
		).
		Then(
			clientv3.OpPut(s.keys.quar(sl.id), strconv.FormatInt(sl.rec.Lease, 10), clientv3.WithLease(lease.ID)),
			clientv3.OpPut(s.keys.occ(sl.id), rec.encode()),
		).
		Commit()
	if err == nil && !resp.Succeeded {
		// Someone else moved the slot first; the unused lease would expire
		// on its own, revoking it only tidies up.
		s.cli.Revoke(ctx, lease.ID)
	}
	return err
}
