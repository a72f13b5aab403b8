package coord

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore is a raft.InmemStore that counts the reads that reach it.
type countingStore struct {
	*raft.InmemStore
	gets int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.gets++
	return s.InmemStore.GetLog(idx, l)
}

func (s *countingStore) Close() error { return nil }

func entries(lo, hi uint64, size int) []*raft.Log {
	var ls []*raft.Log
	for i := lo; i <= hi; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return ls
}

// TestLogCache: recent small entries are read from memory, large and old
// ones from the store; deleted entries are never served, and entries
// outside a deleted range stay cached.
func TestLogCache(t *testing.T) {
	under := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(under)
	if err := c.StoreLogs(entries(1, 1000, 100)); err != nil {
		t.Fatal(err)
	}
	read := func(idx uint64) raft.Log {
		t.Helper()
		var l raft.Log
		if err := c.GetLog(idx, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", idx, err)
		}
		if l.Index != idx || len(l.Data) == 0 || l.Data[0] != byte(idx) {
			t.Fatalf("GetLog(%d) = index %d, data %.4x", idx, l.Index, l.Data)
		}
		return l
	}
	for i := uint64(1000 - logCacheEntries + 1); i <= 1000; i++ {
		read(i)
	}
	if under.gets != 0 {
		t.Fatalf("%d reads of the latest %d entries reached the store, want 0", under.gets, logCacheEntries)
	}
	read(1000 - logCacheEntries) // overwritten in the ring
	if under.gets != 1 {
		t.Fatalf("an entry older than the ring: %d store reads, want 1", under.gets)
	}

	if err := c.StoreLogs(entries(1001, 1001, logCacheMaxData+1)); err != nil {
		t.Fatal(err)
	}
	read(1001)
	if under.gets != 2 {
		t.Fatalf("an entry larger than logCacheMaxData was served from the cache")
	}

	// Truncating the tail, as a follower does on a conflict: the deleted
	// entries are gone, the ones before them still cached.
	if err := c.DeleteRange(990, 1001); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(995, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog of a deleted entry: %v (index %d), want ErrLogNotFound", err, l.Index)
	}
	gets := under.gets
	read(989)
	if under.gets != gets {
		t.Fatal("DeleteRange forgot an entry outside its range")
	}
}

// A failed store caches nothing.
func TestLogCacheFailedStore(t *testing.T) {
	under := &failingStore{countingStore{InmemStore: raft.NewInmemStore()}}
	c := newLogCache(under)
	if err := c.StoreLogs(entries(1, 1, 10)); err == nil {
		t.Fatal("StoreLogs: want the store's error")
	}
	var l raft.Log
	if err := c.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog after a failed store: %v, want ErrLogNotFound", err)
	}
}

type failingStore struct{ countingStore }

func (s *failingStore) StoreLogs([]*raft.Log) error { return errors.New("disk full") }
