package kvstore

import (
	"bytes"
	"sort"

	"github.com/google/btree"
)

// record is one version of one key: what a put wrote or, with version 0, the
// tombstone a delete left. Records are immutable once written, so responses,
// watch events and snapshot views share them without copying. Key and value
// are strings over the bytes the store was given (see liveKey), which
// makes a record 64 bytes, not 80: a million keys hold 16 MB less.
type record struct {
	key     string // shared with the keyIndex of the key
	value   string
	create  int64
	mod     int64
	version int64 // 0 marks a tombstone
	lease   int64
}

func (r *record) tombstone() bool { return r.version == 0 }

// keyIndex holds the history of one key, oldest first. Revisions never
// decrease along revs; a txn whose from-key delete etcd does not count as
// overlapping its puts may leave several records of one key in a revision,
// in the order it wrote them.
//
//	revs: [put@4 v1] [put@7 v2] [del@9] [put@12 v1] [put@15 v2]
//	       `------ generation 1 ------'  `--- generation 2 ---'
//
// A delete ends a generation with a tombstone; the next put starts a new one
// at version 1. Compaction drops records older than the compacted revision but
// keeps the newest one at or below it unless that one is a tombstone.
//
// keyIndex is stored by value in the B-tree so that a cloned tree (a snapshot
// view) never sees a later change of revs: appends write past the length the
// view knows, and compaction builds new slices.
//
// The key is a string sharing the bytes of the records' keys (see liveKey):
// it keeps the B-tree items small.
type keyIndex struct {
	key  string
	revs []*record
}

func lessKeyIndex(a, b keyIndex) bool { return a.key < b.key }

// probe is a keyIndex to search the tree for k.
func probe(k []byte) keyIndex { return keyIndex{key: liveKey(k)} }

const btreeDegree = 64

func newTree() *btree.BTreeG[keyIndex] { return btree.NewG(btreeDegree, lessKeyIndex) }

// liveLocked returns the live record of key, or nil if the key does not
// exist now. (A map from key to live record made point reads no faster
// that a client could tell, and cost 40 bytes a key and a sixth of a
// restart's CPU growing it.)
func (s *Store) liveLocked(key []byte) *record {
	ki, ok := s.tree.Get(probe(key))
	if !ok {
		return nil
	}
	if r := ki.latest(); r != nil && !r.tombstone() {
		return r
	}
	return nil
}

// latest returns the newest record, or nil if there is none.
func (ki *keyIndex) latest() *record {
	if len(ki.revs) == 0 {
		return nil
	}
	return ki.revs[len(ki.revs)-1]
}

// at returns the record visible at rev: the newest record with mod <= rev,
// or nil if the key did not exist at rev (never written yet, or deleted).
func (ki *keyIndex) at(rev int64) *record {
	n := len(ki.revs)
	if n == 0 {
		return nil
	}
	var r *record
	if last := ki.revs[n-1]; last.mod <= rev {
		r = last
	} else {
		i := sort.Search(n, func(i int) bool { return ki.revs[i].mod > rev })
		if i == 0 {
			return nil
		}
		r = ki.revs[i-1]
	}
	if r.tombstone() {
		return nil
	}
	return r
}

// ascend calls fn for every keyIndex in [key, end) as etcd reads a range:
// an empty end means the single key, end "\x00" means every key >= key.
func ascend(t *btree.BTreeG[keyIndex], key, end []byte, fn func(ki *keyIndex) bool) {
	switch {
	case len(end) == 0:
		if ki, ok := t.Get(probe(key)); ok {
			fn(&ki)
		}
	case len(end) == 1 && end[0] == 0:
		t.AscendGreaterOrEqual(probe(key), func(ki keyIndex) bool { return fn(&ki) })
	default:
		if bytes.Compare(key, end) >= 0 {
			return
		}
		t.AscendRange(probe(key), probe(end), func(ki keyIndex) bool { return fn(&ki) })
	}
}

// inRange reports whether k lies in the range [key, end) with etcd's meaning
// of an empty end (single key) and of end "\x00" (every key >= key).
func inRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}
