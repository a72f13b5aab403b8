package coord

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Sizes of logCache: the entries it can hold, and the largest command it
// holds (a larger one is read from disk when needed, which its size
// amortizes). At most logCacheEntries*logCacheMaxData bytes of commands
// (8 MiB) stay in memory.
const (
	logCacheEntries = 512
	logCacheMaxData = 16 << 10
)

// logCache keeps the latest raft entries in memory, so that the reads raft
// makes of entries it has just stored are not disk reads: a leader reads
// every entry back to send it to each follower, and a follower reads every
// entry back to apply it. With the WAL each was a pread and a checksum, a
// tenth of a 3-member cluster's CPU under a write load.
//
// It differs from raft.LogCache in two ways: it holds small entries only,
// so a burst of large writes cannot pin hundreds of MiB, and a DeleteRange
// forgets only the entries it deletes, so the compaction after every
// snapshot does not empty it.
type logCache struct {
	logStore // the store underneath: everything not cached goes there

	mu   sync.RWMutex
	ring []*raft.Log // entry i at i % len(ring), if it is the latest there
}

func newLogCache(s logStore) *logCache {
	return &logCache{logStore: s, ring: make([]*raft.Log, logCacheEntries)}
}

func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	l := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if l != nil && l.Index == idx {
		*log = *l
		return nil
	}
	return c.logStore.GetLog(idx, log)
}

func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores logs, then caches them: a failed store caches nothing.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.logStore.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		slot := &c.ring[l.Index%uint64(len(c.ring))]
		if len(l.Data) > logCacheMaxData {
			*slot = nil // read from disk when needed; and free what was there
			continue
		}
		*slot = l
	}
	return nil
}

// DeleteRange forgets the cached entries in [lo, hi] before deleting them
// below, so no read finds one in the cache once it is gone from the store.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	for i, l := range c.ring {
		if l != nil && l.Index >= lo && l.Index <= hi {
			c.ring[i] = nil
		}
	}
	c.mu.Unlock()
	return c.logStore.DeleteRange(lo, hi)
}

// IsMonotonic tells raft what the store underneath says (the WAL is:
// raft then deletes its whole log after installing a snapshot).
func (c *logCache) IsMonotonic() bool {
	m, ok := c.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
