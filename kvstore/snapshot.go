package kvstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/google/btree"
)

// Snapshot format, version 1. Integers are varints (uvarint for counts and
// lengths), byte strings are a uvarint length and the bytes:
//
//	magic "coordkv\n"  version
//	rev  compactRev  nextLease  keys  logLen     (the last two: size hints)
//	leases:  { 1 id ttl } 0
//	records: { 1 key value create mod version lease } 0
//	crc32c of every byte before it, 4 bytes little endian
//
// Records come in two runs: first the records older than compactRev (at most
// one per key, the live version compaction kept), in key order; then the
// records from compactRev on, in the order they were written. Restoring them
// in that order rebuilds every key's history and the watch log.
const (
	snapshotMagic   = "coordkv\n"
	snapshotVersion = 1
	maxSnapshotItem = 1 << 31 // bound on one key or value, against corrupt lengths
	maxSizeHint     = 1 << 22 // bound on what a size hint may presize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a consistent view of a store at one revision, taken in O(1)
// while writes go on. Encode it with WriteTo.
type Snapshot struct {
	tree       *btree.BTreeG[keyIndex]
	log        []*record
	rev        int64
	compactRev int64
	nextLease  int64
	leases     []Lease
}

// Snapshot returns a view of the current state. Writes that follow do not
// change it.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := &Snapshot{
		tree:       s.tree.Clone(),
		log:        s.log[:len(s.log):len(s.log)],
		rev:        s.rev,
		compactRev: s.compactRev,
		nextLease:  s.nextLease,
	}
	for _, l := range s.leases {
		sn.leases = append(sn.leases, Lease{ID: l.id, TTL: l.ttl})
	}
	slices.SortFunc(sn.leases, func(a, b Lease) int { return cmpInt64(a.ID, b.ID) })
	return sn
}

// Rev returns the revision of the snapshot.
func (sn *Snapshot) Rev() int64 { return sn.rev }

// WriteTo encodes the snapshot to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	e := &encoder{w: bufio.NewWriterSize(w, 1<<16), crc: crc32.New(castagnoli)}
	e.raw([]byte(snapshotMagic))
	e.uvarint(snapshotVersion)
	e.varint(sn.rev)
	e.varint(sn.compactRev)
	e.varint(sn.nextLease)
	e.uvarint(uint64(sn.tree.Len()))
	e.uvarint(uint64(len(sn.log)))
	for _, l := range sn.leases {
		e.uvarint(1)
		e.varint(l.ID)
		e.varint(l.TTL)
	}
	e.uvarint(0)
	sn.tree.Ascend(func(ki keyIndex) bool {
		if r := ki.revs[0]; r.mod < sn.compactRev {
			e.record(r)
		}
		return e.err == nil
	})
	for _, r := range sn.log {
		if e.err != nil {
			break
		}
		e.record(r)
	}
	e.uvarint(0)
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], e.crc.Sum32())
	if e.err == nil {
		_, e.err = e.w.Write(sum[:])
		e.n += 4
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.n, e.err
}

type encoder struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	err error
	buf [binary.MaxVarintLen64]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	e.crc.Write(b)
	_, e.err = e.w.Write(b)
	e.n += int64(len(b))
}

func (e *encoder) uvarint(v uint64) { e.raw(e.buf[:binary.PutUvarint(e.buf[:], v)]) }
func (e *encoder) varint(v int64)   { e.raw(e.buf[:binary.PutVarint(e.buf[:], v)]) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.raw(b) }

func (e *encoder) record(r *record) {
	e.uvarint(1)
	e.bytes(bytesOf(r.key))
	e.bytes(bytesOf(r.value))
	e.varint(r.create)
	e.varint(r.mod)
	e.varint(r.version)
	e.varint(r.lease)
}

// Restore replaces the state of the store with the snapshot read from r. On
// any error the store is left exactly as it was. Watches stay open: each one
// continues from where it was, catching up from the restored history, or is
// cancelled if that history is compacted in the snapshot.
func (s *Store) Restore(r io.Reader) error {
	st, err := decodeSnapshot(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	oldRev := s.rev
	s.tree, s.log, s.rev, s.compactRev = st.tree, st.log, st.rev, st.compactRev
	s.leases, s.nextLease, s.size = st.leases, st.nextLease, st.size
	s.hub.restored(oldRev, s.rev, s.compactRev)
	return nil
}

// restoredState is a decoded snapshot, built aside so a failed decode
// touches nothing.
type restoredState struct {
	tree       *btree.BTreeG[keyIndex]
	log        []*record
	rev        int64
	compactRev int64
	nextLease  int64
	leases     map[int64]*lease
	size       int64

	keys  map[string]int // position in index while decoding
	index []keyIndex
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSnapshotCorrupt}, args...)...)
}

func decodeSnapshot(r io.Reader) (*restoredState, error) {
	d := &decoder{r: bufio.NewReaderSize(r, 1<<16), crc: crc32.New(castagnoli)}
	var magic [len(snapshotMagic)]byte
	d.raw(magic[:])
	if d.err != nil || string(magic[:]) != snapshotMagic {
		return nil, corrupt("bad magic")
	}
	if v := d.uvarint(); d.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("%w: %d", ErrSnapshotVersion, v)
	}
	st := &restoredState{leases: make(map[int64]*lease)}
	st.rev = d.varint()
	st.compactRev = d.varint()
	st.nextLease = d.varint()
	// Size hints only presize; a corrupt one costs at most maxSizeHint.
	keys, logLen := min(d.uvarint(), maxSizeHint), min(d.uvarint(), maxSizeHint)
	st.keys = make(map[string]int, keys)
	st.index = make([]keyIndex, 0, keys)
	st.log = make([]*record, 0, logLen)
	for d.err == nil && d.uvarint() == 1 {
		id, ttl := d.varint(), d.varint()
		if _, dup := st.leases[id]; dup || id == 0 {
			return nil, corrupt("lease %d repeated or zero", id)
		}
		st.leases[id] = &lease{id: id, ttl: ttl, keys: make(map[string]struct{})}
	}
	lastMod := int64(0)
	for d.err == nil && d.uvarint() == 1 {
		rec := &record{key: liveKey(d.bytes()), value: liveKey(d.bytes()), create: d.varint(), mod: d.varint(), version: d.varint(), lease: d.varint()}
		if d.err != nil {
			break
		}
		if err := st.add(rec, &lastMod); err != nil {
			return nil, err
		}
	}
	if d.err != nil {
		return nil, corrupt("%v", d.err)
	}
	want := d.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		return nil, corrupt("missing checksum: %v", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != want {
		return nil, corrupt("checksum mismatch")
	}
	if _, err := d.r.ReadByte(); err != io.EOF {
		return nil, corrupt("trailing data")
	}
	if err := st.buildIndex(); err != nil {
		return nil, err
	}
	// A revision never goes backwards, whatever was lost to compaction.
	st.rev = max(st.rev, st.compactRev, lastMod, 1)
	st.log = slices.Clip(st.log)
	return st, nil
}

// add inserts one decoded record, checking what a store could have written.
func (st *restoredState) add(rec *record, lastMod *int64) error {
	if len(rec.key) == 0 || rec.mod <= 0 || rec.version < 0 {
		return corrupt("malformed record")
	}
	if rec.mod >= st.compactRev {
		if rec.mod < *lastMod {
			return corrupt("records out of order")
		}
		*lastMod = rec.mod
	} else if *lastMod != 0 || rec.tombstone() {
		return corrupt("compacted record out of place")
	}
	if i, ok := st.keys[rec.key]; ok {
		ki := &st.index[i]
		last := ki.latest()
		if last.mod > rec.mod {
			return corrupt("history of %q out of order", rec.key)
		}
		rec.key = last.key // one copy of the key bytes per key
		ki.revs = append(ki.revs, rec)
	} else {
		st.keys[rec.key] = len(st.index)
		st.index = append(st.index, keyIndex{key: rec.key, revs: []*record{rec}})
	}
	if rec.mod >= st.compactRev {
		st.log = append(st.log, rec)
	}
	st.size += int64(len(rec.key)+len(rec.value)) + recordOverhead
	return nil
}

// index builds the key index and attaches each live key to its lease.
// Older versions may name leases revoked since; the live version may not.
//
// The B-tree is filled in key order (it stays in cache), in two passes:
// every other key, then the rest. Keys inserted in order leave each node
// half full, since a full node splits in the middle and only its right
// half receives more keys; the second pass fills every node's other half
// without splitting it. A million keys take about 30 MB less.
func (st *restoredState) buildIndex() error {
	slices.SortFunc(st.index, func(a, b keyIndex) int { return strings.Compare(a.key, b.key) })
	st.keys = nil
	st.tree = newTree()
	for pass := range 2 {
		for i := pass; i < len(st.index); i += 2 {
			st.tree.ReplaceOrInsert(st.index[i])
		}
	}
	for _, ki := range st.index {
		r := ki.latest()
		if r.tombstone() {
			continue
		}
		if r.lease == 0 {
			continue
		}
		l := st.leases[r.lease]
		if l == nil {
			return corrupt("key %q attached to unknown lease %d", r.key, r.lease)
		}
		l.keys[ki.key] = struct{}{}
	}
	st.index = nil
	return nil
}

type decoder struct {
	r   *bufio.Reader
	crc hash.Hash32
	err error
}

var errTooLarge = errors.New("length out of range")

func (d *decoder) raw(b []byte) {
	if d.err != nil {
		return
	}
	_, d.err = io.ReadFull(d.r, b)
	d.crc.Write(b)
}

var errBadVarint = errors.New("malformed varint")

// next peeks at the bytes of the next varint and consumes them through the
// checksum once decoded.
func (d *decoder) next(decode func([]byte) int) {
	if d.err != nil {
		return
	}
	buf, err := d.r.Peek(binary.MaxVarintLen64)
	if len(buf) == 0 {
		d.err = err
		return
	}
	n := decode(buf)
	if n <= 0 {
		d.err = errBadVarint
		return
	}
	d.crc.Write(buf[:n])
	_, d.err = d.r.Discard(n)
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	d.next(func(b []byte) (n int) { v, n = binary.Uvarint(b); return n })
	return v
}

func (d *decoder) varint() int64 {
	var v int64
	d.next(func(b []byte) (n int) { v, n = binary.Varint(b); return n })
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxSnapshotItem {
		d.err = errTooLarge
		return nil
	}
	if n == 0 {
		return nil
	}
	// Read in bounded steps so a corrupt length cannot make us allocate
	// far more than the stream holds.
	var b []byte
	for uint64(len(b)) < n && d.err == nil {
		step := min(n-uint64(len(b)), 1<<20)
		chunk := make([]byte, step)
		d.raw(chunk)
		if b == nil && step == n {
			return chunk
		}
		b = append(b, chunk...)
	}
	if d.err == io.EOF {
		d.err = io.ErrUnexpectedEOF
	}
	return b
}

// restored makes every watcher catch up from the restored history: a synced
// one from the revision after oldRev, the last one it was sent. A watcher
// whose next revision the snapshot has compacted away is cancelled.
func (h *hub) restored(oldRev, newRev, compactRev int64) {
	visit := func(w *watcher) {
		if w.nextRev == 0 {
			w.nextRev = max(oldRev+1, w.startRev)
			if w.nextRev > newRev {
				// Nothing to replay yet: stays synced.
				w.nextRev = 0
				return
			}
			w.stream.unsynced++
		}
		if w.nextRev < compactRev {
			w.compacted = true
		}
		w.stream.signal()
	}
	for _, ws := range h.keys {
		for _, w := range ws {
			visit(w)
		}
	}
	for _, w := range h.ranges {
		visit(w)
	}
}
