package kvstore

import (
	"sync"
	"unsafe"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Config tunes a Store. The zero value of a field means its default.
type Config struct {
	// MaxTxnOps bounds the compares and the ops of each branch of a txn
	// (etcd's --max-txn-ops). Default 128.
	MaxTxnOps int
	// WatchQueueSize bounds the responses queued on one watch stream. A
	// stream whose consumer falls behind stops queueing; its watchers catch
	// up from history once it reads again. Default 1024.
	WatchQueueSize int
	// WatchCatchUpEvents bounds the events one catch-up read takes from
	// history for one watcher, so a far-behind watcher is served in steps.
	// Default 1000.
	WatchCatchUpEvents int
}

// DefaultConfig returns the configuration etcd uses by default.
func DefaultConfig() Config {
	return Config{MaxTxnOps: 128, WatchQueueSize: 1024, WatchCatchUpEvents: 1000}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = d.MaxTxnOps
	}
	if c.WatchQueueSize <= 0 {
		c.WatchQueueSize = d.WatchQueueSize
	}
	if c.WatchCatchUpEvents <= 0 {
		c.WatchCatchUpEvents = d.WatchCatchUpEvents
	}
	return c
}

// recordOverhead is what Size charges for one record beyond its key and
// value: the record itself and its slots in the key index and the log.
const recordOverhead = 96

// Store is the revisioned key-value state machine. All methods are safe for
// concurrent use: reads share a lock, writes take it exclusively and are
// applied one at a time in the order they are called. The store never reads
// a clock and never does I/O except to the writer or reader it is given.
//
// Byte slices in requests become owned by the store (they are not copied), and
// byte slices in responses and events are shared with it: neither side may
// modify them afterwards.
type Store struct {
	cfg Config

	// mu guards every field below and the synced state of all watchers.
	// Lock order: Store.mu before WatchStream.mu.
	mu         sync.RWMutex
	tree       *btree.BTreeG[keyIndex]
	log        []*record // every record with mod >= compactRev, in write order
	rev        int64
	compactRev int64
	leases     map[int64]*lease
	nextLease  int64 // next candidate for an ID-0 lease grant
	size       int64 // bytes charged by Size
	hub        hub
}

// New returns an empty store at revision 1.
func New(cfg Config) *Store {
	s := &Store{cfg: cfg.withDefaults()}
	s.resetLocked()
	return s
}

func (s *Store) resetLocked() {
	s.tree = newTree()
	s.log = nil
	s.rev = 1
	s.compactRev = -1 // as etcd: Compact(0) on a new store succeeds once
	s.leases = make(map[int64]*lease)
	s.nextLease = 1
	s.size = 0
	s.hub.init()
}

// Rev returns the current revision.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// CompactRev returns the revision of the last compaction, -1 if none.
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// Size returns an estimate in bytes of the memory the stored history takes:
// keys, values and a fixed per-record overhead. It is what a space quota
// should compare against; compaction lowers it.
func (s *Store) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.size
}

// Watchers returns the number of watches open on all streams.
func (s *Store) Watchers() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hub.n
}

// Len returns the number of live keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	s.tree.Ascend(func(ki keyIndex) bool {
		if r := ki.latest(); r != nil && !r.tombstone() {
			n++
		}
		return true
	})
	return n
}

// liveKey returns the map key for k without copying it: the bytes of a
// stored key are never modified, so a string may share them.
func liveKey(k []byte) string { return unsafe.String(unsafe.SliceData(k), len(k)) }

// bytesOf returns the bytes of a stored key or value without copying
// them, for responses and events; their receivers only read them.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func toKV(r *record, keysOnly bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{
		Key:            bytesOf(r.key),
		CreateRevision: r.create,
		ModRevision:    r.mod,
		Version:        r.version,
		Lease:          r.lease,
	}
	if !keysOnly {
		kv.Value = bytesOf(r.value)
	}
	return kv
}
