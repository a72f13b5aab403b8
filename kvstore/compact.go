package kvstore

import "sort"

// Compact drops the history older than rev. Reads and watches at rev and
// later are unaffected; below rev they fail with ErrCompacted. Of each key
// the newest record at or below rev is kept when it is live, or when it is a
// tombstone written exactly at rev (as etcd does, so a watch from rev still
// sees that delete); a key whose newest record is an older tombstone
// disappears with its history.
// Compacting at or below the compacted revision fails with ErrCompacted,
// above the current revision with ErrFutureRev. The revision does not move.
//
// The memory of the dropped history is released: kept history is copied
// into new slices so the old ones can be collected.
func (s *Store) Compact(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.compactRev {
		return ErrCompacted
	}
	if rev > s.rev {
		return ErrFutureRev
	}
	var changed []keyIndex
	keptAtRev := make(map[*record]bool) // the records written at rev that stay
	s.tree.Ascend(func(ki keyIndex) bool {
		// i: the records at or below rev; keep the last of them if live.
		i := sort.Search(len(ki.revs), func(i int) bool { return ki.revs[i].mod > rev })
		keep := i
		if i > 0 && (!ki.revs[i-1].tombstone() || ki.revs[i-1].mod == rev) {
			keep = i - 1
			if ki.revs[keep].mod == rev {
				keptAtRev[ki.revs[keep]] = true
			}
		}
		if keep == 0 {
			return true
		}
		for _, r := range ki.revs[:keep] {
			s.size -= int64(len(r.key)+len(r.value)) + recordOverhead
		}
		changed = append(changed, keyIndex{key: ki.key, revs: append([]*record(nil), ki.revs[keep:]...)})
		return true
	})
	for _, ki := range changed {
		if len(ki.revs) == 0 {
			s.tree.Delete(ki)
		} else {
			s.tree.ReplaceOrInsert(ki)
		}
	}

	// The log keeps what the key index keeps at and above rev: everything
	// newer than rev, and at rev the last record of each key. (Usually there
	// is one per key, but a txn can write a key more than once.)
	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].mod >= rev })
	log := make([]*record, 0, len(s.log)-i)
	for _, r := range s.log[i:] {
		if r.mod == rev && !keptAtRev[r] {
			continue
		}
		log = append(log, r)
	}
	s.log = log
	s.compactRev = rev
	s.hub.compacted(rev)
	return nil
}
