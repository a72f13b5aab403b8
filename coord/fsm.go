package coord

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// applyResult is what applying one command produced; raft hands it to the
// Apply future of the node that proposed it.
type applyResult struct {
	resp proto.Message
	err  error
}

// leaseHook hears of the leases the log grants and revokes, on every node,
// in log order. The lessor uses it to track deadlines.
type leaseHook interface {
	granted(id, ttl int64)
	revoked(id int64)
	restored(leases []kvstore.Lease)
}

// fsm applies raft log entries to the store. Apply is deterministic: it
// reads no clock and its only inputs are the entries and the store.
type fsm struct {
	store *kvstore.Store
	quota int64
	hook  leaseHook
	// observeApply, if set, hears how long each batch took to apply.
	observeApply func(seconds float64)
	// waitSynced and drainLog, if set, wait for the raft log on disk
	// here (asyncLog): nothing is applied, and no snapshot taken, above it.
	waitSynced func(index uint64) bool
	drainLog   func() error

	mu      sync.Mutex // guards applied, waiters and changedc
	applied uint64     // index of the last entry the store has applied
	waiters []waiter
	// changedc is closed and replaced after every applied batch and
	// restore: "the store changed", for waitLocal.
	changedc chan struct{}
}

// changed returns a channel closed at the next change of the store.
func (f *fsm) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changedc == nil {
		f.changedc = make(chan struct{})
	}
	return f.changedc
}

func (f *fsm) broadcast() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changedc != nil {
		close(f.changedc)
		f.changedc = nil
	}
}

type waiter struct {
	index uint64
	ch    chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(store *kvstore.Store, quota int64, hook leaseHook) *fsm {
	return &fsm{store: store, quota: quota, hook: hook}
}

// Apply applies one entry.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now() // measurement only; nothing applied depends on it
	out := make([]any, len(logs))
	if f.waitSynced != nil && len(logs) > 0 && !f.waitSynced(logs[len(logs)-1].Index) {
		// The leader could not write these entries (see asyncLog): the
		// process is stopping, and nothing unwritten is applied.
		for i := range out {
			out[i] = applyResult{err: errLogWriteFailed}
		}
		return out
	}
	next := decodeCommands(logs)
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.applyCommand(next(l))
		}
	}
	if len(logs) > 0 {
		f.setApplied(logs[len(logs)-1].Index)
	}
	f.broadcast()
	if f.observeApply != nil {
		f.observeApply(time.Since(start).Seconds())
	}
	return out
}

// decoded is one command entry, unmarshaled.
type decoded struct {
	req *pb.InternalRaftRequest
	err error
}

// pipelineBytes is the command data in a batch above which the batch is
// decoded on a second goroutine while the apply works through it: a restart
// replaying its log, or a follower catching up, hands the FSM batches of
// megabytes, and there unmarshaling was a third of the time the single
// apply goroutine spent. Small batches, the steady state, decode inline:
// handing them to another goroutine costs more than it saves.
const pipelineBytes = 256 << 10

// decodeAhead is how many decoded commands may wait for the apply.
const decodeAhead = 8

// decodeCommands returns the function ApplyBatch calls with each LogCommand
// entry of logs, in log order, for its decoded command. Decoding is pure,
// so doing it on another goroutine changes nothing about what is applied.
func decodeCommands(logs []*raft.Log) func(*raft.Log) decoded {
	size, n := 0, 0
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			size += len(l.Data)
			n++
		}
	}
	if size < pipelineBytes {
		return func(l *raft.Log) decoded { return decode(l.Data) }
	}
	// The decoder stays at most decodeAhead entries ahead, so a batch's
	// decoded copies are not all in memory at once beside raft's. It
	// always ends: ApplyBatch takes every command of the batch.
	ch := make(chan decoded, min(n, decodeAhead))
	go func() {
		for _, l := range logs {
			if l.Type == raft.LogCommand {
				ch <- decode(l.Data)
			}
		}
	}()
	return func(*raft.Log) decoded { return <-ch }
}

func decode(data []byte) decoded {
	req, err := unmarshalCommand(data)
	return decoded{req: req, err: err}
}

func (f *fsm) applyCommand(d decoded) applyResult {
	if d.err != nil {
		// Never written by a server of ours; applying it as a no-op keeps
		// every replica identical.
		return applyResult{err: fmt.Errorf("coord: undecodable log entry: %w", d.err)}
	}
	req := d.req
	s := f.store
	switch {
	case req.Put != nil:
		if f.overQuota() {
			return applyResult{err: ErrNoSpace}
		}
		r, err := s.Put(req.Put)
		return applyResult{r, err}
	case req.DeleteRange != nil:
		r, err := s.DeleteRange(req.DeleteRange)
		return applyResult{r, err}
	case req.Txn != nil:
		if f.overQuota() && txnWrites(req.Txn) {
			return applyResult{err: ErrNoSpace}
		}
		r, err := s.Txn(req.Txn)
		return applyResult{r, err}
	case req.Compaction != nil:
		err := s.Compact(req.Compaction.Revision)
		if err != nil {
			return applyResult{err: err}
		}
		return applyResult{resp: &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: s.Rev()}}}
	case req.LeaseGrant != nil:
		if f.overQuota() {
			return applyResult{err: ErrNoSpace}
		}
		l, err := s.LeaseGrant(req.LeaseGrant.ID, req.LeaseGrant.TTL)
		if err != nil {
			return applyResult{err: err}
		}
		if f.hook != nil {
			f.hook.granted(l.ID, l.TTL)
		}
		return applyResult{resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: s.Rev()}, ID: l.ID, TTL: l.TTL}}
	case req.LeaseRevoke != nil:
		_, hdr, err := s.LeaseRevoke(req.LeaseRevoke.ID)
		if err != nil {
			return applyResult{err: err}
		}
		if f.hook != nil {
			f.hook.revoked(req.LeaseRevoke.ID)
		}
		return applyResult{resp: &pb.LeaseRevokeResponse{Header: hdr}}
	}
	return applyResult{err: fmt.Errorf("coord: log entry with no known request")}
}

// overQuota reports whether the store is past its quota. Every replica
// holds the same state, so every replica decides alike.
func (f *fsm) overQuota() bool { return f.quota > 0 && f.store.Size() >= f.quota }

// txnWrites reports whether a txn contains a put anywhere; deletes are
// allowed past the quota, because they are how space comes back.
func txnWrites(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestPut() != nil {
				return true
			}
			if t := op.GetRequestTxn(); t != nil && txnWrites(t) {
				return true
			}
		}
	}
	return false
}

// setApplied records that the store has applied everything up to index.
// The applied index never goes backwards: a late caller with an older index
// (Start, after raft already applied more) changes nothing.
func (f *fsm) setApplied(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index <= f.applied {
		return
	}
	f.applied = index
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// appliedIndex returns the index of the last entry the store has applied
// (not merely handed to the FSM, as raft's AppliedIndex is).
func (f *fsm) appliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// waitApplied returns a channel closed once the store has applied index.
func (f *fsm) waitApplied(index uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	if f.applied >= index {
		close(ch)
		return ch
	}
	f.waiters = append(f.waiters, waiter{index, ch})
	return ch
}

// snapshotMagic starts a raft snapshot written by this FSM: the magic, then
// the applied index (8 bytes, big endian), then the store's own snapshot.
// Snapshots that start with the store's format directly (written before the
// index was recorded) are still read.
const snapshotMagic = "coordfsm"

// Snapshot captures the store in O(1); Persist encodes it while applies go
// on. raft calls it between applies, so the applied index matches the store.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if f.drainLog != nil {
		if err := f.drainLog(); err != nil {
			return nil, err
		}
	}
	return fsmSnapshot{index: f.appliedIndex(), sn: f.store.Snapshot()}, nil
}

// Restore replaces the store with a snapshot raft installs, and moves the
// applied index to the snapshot's, so that reads waiting for an index the
// snapshot covers are released without waiting for the next entry.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	var index uint64
	if head, err := br.Peek(len(snapshotMagic) + 8); err == nil && string(head[:len(snapshotMagic)]) == snapshotMagic {
		index = binary.BigEndian.Uint64(head[len(snapshotMagic):])
		br.Discard(len(head))
	}
	if err := f.store.Restore(br); err != nil {
		return err
	}
	if f.hook != nil {
		f.hook.restored(f.store.Leases())
	}
	f.setApplied(index)
	f.broadcast()
	return nil
}

type fsmSnapshot struct {
	index uint64
	sn    *kvstore.Snapshot
}

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	head := binary.BigEndian.AppendUint64([]byte(snapshotMagic), s.index)
	if _, err := sink.Write(head); err != nil {
		sink.Cancel()
		return err
	}
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
