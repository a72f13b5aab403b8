package coord

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// errLogWriteFailed answers the entries a leader could not write.
var errLogWriteFailed = errors.New("coord: raft log write failed")

// asyncLog lets a leader write its log while it replicates it.
//
// hashicorp/raft's leader stores a batch of new entries (a write and an
// fsync) and only then wakes the replicators, so a write on three members
// waits for two fsyncs one after the other: the leader's, then a
// follower's. etcd's leader sends while it persists. The Raft paper allows
// it (section 10.2.1) as long as an entry counts as committed only once a
// majority has it on disk.
//
// raft counts the leader's own copy as soon as StoreLogs returns, so
// asyncLog's StoreLogs returns before the leader's copy is on disk only
// where nothing can observe the difference:
//
//   - It defers only a leader's batches of commands, no-ops and barriers.
//     A batch with a configuration change is written before StoreLogs
//     returns, because raft acts on a committed configuration itself.
//   - The FSM applies nothing above synced (waitSynced, called by
//     fsm.ApplyBatch), so on the leader nothing is applied, answered or
//     read until the leader's copy is on disk as well as a quorum's; and
//     it snapshots only what is written (drain, called by fsm.Snapshot).
//   - The leader tells followers a commit index no higher than synced
//     (syncedCommitTransport), so a follower applies nothing that only a
//     minority has on disk.
//
// A leader that crashes with entries still unwritten loses them as an
// uncommitted entry is lost: nobody applied them or heard they were
// committed. A leader that does not crash always writes them: the writer
// finishes its queue even after the member stops leading, before any
// later write, deletion or Close.
//
// A deferred write that fails cannot be taken back (raft counted it), so
// it is fatal, as a failed WAL write is to etcd.
type asyncLog struct {
	logStore // the store underneath

	// leading, once set, reports whether raft leads; only a leader's
	// writes are deferred. raft calls StoreLogs from its main goroutine,
	// which makes every change to its state but one (a heartbeat from a
	// newer leader, handled on the transport's goroutine, makes it a
	// follower), so "raft leads" read there means the call came from the
	// leader's dispatch; the one exception only makes a write synchronous.
	leading atomic.Pointer[func() bool]
	// alone, once set, is true while raft leads as its configuration's
	// only voter; its writes are made before StoreLogs returns, since with
	// nobody to replicate to, a deferred write only adds a hand-off to
	// another goroutine (about 15 µs a put). Stale, it costs time, never
	// safety: either way of writing is safe.
	alone atomic.Pointer[atomic.Bool]
	fatal func(error) // a deferred write failed

	// wmu serializes writes and deletions on the store underneath.
	wmu sync.Mutex

	mu      sync.Mutex
	cond    *sync.Cond           // broadcast when written or synced moves, or on close
	queue   [][]*raft.Log        // deferred batches, in log order, not yet taken by the writer
	pending map[uint64]*raft.Log // deferred entries not yet written
	queued  uint64               // batches ever queued
	written uint64               // of those, batches written (or failed)
	failed  error                // a deferred write failed: nothing more is written
	closing bool                 // the writer exits once the queue is empty
	synced  atomic.Uint64        // every entry at or below is on disk here
	stopped chan struct{}        // closed when the writer has exited
}

// newAsyncLog wraps s; everything in s when it opens is on disk. Until
// leading is set, every write is made before StoreLogs returns.
func newAsyncLog(s logStore, fatal func(error)) (*asyncLog, error) {
	last, err := s.LastIndex()
	if err != nil {
		return nil, err
	}
	a := &asyncLog{
		logStore: s,
		fatal:    fatal,
		pending:  make(map[uint64]*raft.Log),
		stopped:  make(chan struct{}),
	}
	a.cond = sync.NewCond(&a.mu)
	a.synced.Store(last)
	go a.writer()
	return a, nil
}

// mayDefer reports whether StoreLogs may return before writing logs.
func (a *asyncLog) mayDefer(logs []*raft.Log) bool {
	if leading := a.leading.Load(); leading == nil || !(*leading)() {
		return false
	}
	if alone := a.alone.Load(); alone != nil && alone.Load() {
		return false
	}
	return deferrable(logs)
}

// deferrable reports whether a batch holds only entries raft leaves to the
// FSM or ignores: commands, no-ops and barriers.
func deferrable(logs []*raft.Log) bool {
	for _, l := range logs {
		switch l.Type {
		case raft.LogCommand, raft.LogNoop, raft.LogBarrier:
		default:
			return false
		}
	}
	return true
}

func (a *asyncLog) StoreLog(l *raft.Log) error { return a.StoreLogs([]*raft.Log{l}) }

func (a *asyncLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if a.mayDefer(logs) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.failed != nil {
			return a.failed
		}
		if a.closing {
			return raft.ErrRaftShutdown
		}
		for _, l := range logs {
			a.pending[l.Index] = l
		}
		a.queue = append(a.queue, logs)
		a.queued++
		a.cond.Broadcast()
		return nil
	}
	return a.now(func() error {
		if err := a.logStore.StoreLogs(logs); err != nil {
			return err
		}
		a.synced.Store(logs[len(logs)-1].Index)
		return nil
	})
}

// now runs op on the store once every write deferred before it is made.
func (a *asyncLog) now(op func() error) error {
	if err := a.drain(); err != nil {
		return err
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if err := op(); err != nil {
		return err
	}
	a.mu.Lock()
	a.cond.Broadcast() // synced may have moved
	a.mu.Unlock()
	return nil
}

// writer makes the deferred writes, every batch queued at the time in one
// StoreLogs (one fsync), until Close.
func (a *asyncLog) writer() {
	defer close(a.stopped)
	var merged []*raft.Log
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.closing {
			a.cond.Wait()
		}
		if len(a.queue) == 0 {
			a.mu.Unlock()
			return
		}
		batches := a.queue
		a.queue = nil
		a.mu.Unlock()

		merged = merged[:0]
		for _, b := range batches {
			merged = append(merged, b...)
		}
		a.wmu.Lock()
		err := a.logStore.StoreLogs(merged)
		if err == nil {
			a.synced.Store(merged[len(merged)-1].Index)
		}
		a.wmu.Unlock()

		if err != nil {
			// Nobody waiting learns of the failure (they stay blocked)
			// until fatal, which stops the process, has run; then they
			// learn these entries will never be written, and apply none.
			failed := fmt.Errorf("coord: writing raft entries %d-%d: %w", merged[0].Index, merged[len(merged)-1].Index, err)
			a.fatal(failed)
			a.mu.Lock()
			a.failed = failed
			a.queue = nil
			a.written = a.queued
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		a.mu.Lock()
		for _, l := range merged {
			delete(a.pending, l.Index)
		}
		a.written += uint64(len(batches))
		a.cond.Broadcast()
		a.mu.Unlock()
		clear(merged) // the entries belong to raft and the cache
	}
}

// waitSynced returns true once every entry at or below idx is on disk
// here, and false if that will never be: a deferred write failed (which is
// fatal), and the caller must not apply those entries.
func (a *asyncLog) waitSynced(idx uint64) bool {
	if a.synced.Load() >= idx {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.synced.Load() < idx && a.failed == nil && len(a.pending) > 0 {
		a.cond.Wait()
	}
	return a.failed == nil
}

// drain returns once every write deferred so far is on disk, or the
// failure that means it never will be. fsm.Snapshot calls it: raft
// snapshots at the index its FSM goroutine last handled, which may be a
// barrier or a no-op the FSM never saw (and so never waited for): a
// snapshot above the log on disk would leave a gap that raft-wal refuses
// to append after, at the next restart.
func (a *asyncLog) drain() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	target := a.queued
	for a.written < target && a.failed == nil {
		a.cond.Wait()
	}
	return a.failed
}

// syncedIndex is the highest index at or below which every entry is on
// disk here.
func (a *asyncLog) syncedIndex() uint64 { return a.synced.Load() }

func (a *asyncLog) GetLog(idx uint64, l *raft.Log) error {
	a.mu.Lock()
	p, ok := a.pending[idx]
	a.mu.Unlock()
	if ok {
		*l = *p
		return nil
	}
	return a.logStore.GetLog(idx, l)
}

// LastIndex and FirstIndex describe the log raft has, deferred entries
// included: they answer once those are written.
func (a *asyncLog) LastIndex() (uint64, error) {
	var idx uint64
	err := a.now(func() (err error) {
		idx, err = a.logStore.LastIndex()
		return err
	})
	return idx, err
}

func (a *asyncLog) FirstIndex() (uint64, error) {
	var idx uint64
	err := a.now(func() (err error) {
		idx, err = a.logStore.FirstIndex()
		return err
	})
	return idx, err
}

// DeleteRange deletes once every deferred write is made. A follower
// truncating a conflicting tail lowers synced to below it; the entries it
// stores next raise it again.
func (a *asyncLog) DeleteRange(lo, hi uint64) error {
	return a.now(func() error {
		if err := a.logStore.DeleteRange(lo, hi); err != nil {
			return err
		}
		if hi >= a.synced.Load() && lo > 0 {
			a.synced.Store(min(a.synced.Load(), lo-1))
		}
		return nil
	})
}

// Close makes every deferred write, then closes the store.
func (a *asyncLog) Close() error {
	a.mu.Lock()
	a.closing = true
	a.cond.Broadcast()
	a.mu.Unlock()
	<-a.stopped
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.logStore.Close()
}

// IsMonotonic passes on what the store underneath says.
func (a *asyncLog) IsMonotonic() bool {
	m, ok := a.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// syncedCommitTransport is raft's transport with one change: an
// AppendEntries carries a commit index no higher than what the leader has
// on disk (see asyncLog).
type syncedCommitTransport struct {
	*raft.NetworkTransport
	synced func() uint64
}

func (t syncedCommitTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	args.LeaderCommitIndex = min(args.LeaderCommitIndex, t.synced())
	return t.NetworkTransport.AppendEntries(id, target, args, resp)
}

func (t syncedCommitTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return syncedCommitPipeline{p, t.synced}, nil
}

type syncedCommitPipeline struct {
	raft.AppendPipeline
	synced func() uint64
}

func (p syncedCommitPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	args.LeaderCommitIndex = min(args.LeaderCommitIndex, p.synced())
	return p.AppendPipeline.AppendEntries(args, resp)
}
