package coord

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// gateStore is an in-memory log whose StoreLogs announces itself on entered
// and then waits for gate to close; fail makes it fail instead.
type gateStore struct {
	*raft.InmemStore
	entered chan struct{}
	gate    chan struct{}
	fail    error
}

func newGateStore() *gateStore {
	return &gateStore{InmemStore: raft.NewInmemStore(), entered: make(chan struct{}, 100), gate: make(chan struct{})}
}

func (s *gateStore) StoreLogs(logs []*raft.Log) error {
	s.entered <- struct{}{}
	<-s.gate
	if s.fail != nil {
		return s.fail
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *gateStore) Close() error { return nil }

func logsOf(typ raft.LogType, lo, hi uint64) []*raft.Log {
	var ls []*raft.Log
	for i := lo; i <= hi; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Type: typ, Data: []byte{byte(i)}})
	}
	return ls
}

// newTestAsyncLog returns an asyncLog over a fresh gateStore that believes
// it leads with other voters, and the errors its fatal hook receives.
func newTestAsyncLog(t *testing.T) (*asyncLog, *gateStore, chan error) {
	t.Helper()
	s := newGateStore()
	fatal := make(chan error, 1)
	a, err := newAsyncLog(s, func(err error) { fatal <- err })
	if err != nil {
		t.Fatal(err)
	}
	leading := func() bool { return true }
	a.leading.Store(&leading)
	t.Cleanup(func() {
		select {
		case <-s.gate:
		default:
			close(s.gate)
		}
		a.Close()
	})
	return a, s, fatal
}

// within waits for done, failing the test after 10 s.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitsForGate checks that done, the end of a call made after the store
// announced a write, has not come while the write is held, then lets the
// write through and waits for done. The check right after the call starts
// catches only a call that returned at once; what the tests read after it
// (synced, the store's contents) shows the order the call kept.
func waitsForGate(t *testing.T, s *gateStore, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("%s came before the store had written", what)
	default:
	}
	close(s.gate)
	within(t, done, what)
}

func async(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	return done
}

// TestAsyncLogDefersLeaderCommands: a leader's batch of commands is
// accepted before it is written; raft can read it back at once; it counts
// as synced, and waitSynced returns, only once it is written.
func TestAsyncLogDefersLeaderCommands(t *testing.T) {
	a, s, _ := newTestAsyncLog(t)
	var err error
	within(t, async(func() { err = a.StoreLogs(logsOf(raft.LogCommand, 1, 3)) }), "a deferred StoreLogs to return while the store is blocked")
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := a.GetLog(2, &l); err != nil || l.Index != 2 || l.Data[0] != 2 {
		t.Fatalf("GetLog(2) of an unwritten entry: %+v, %v", l, err)
	}
	if got := a.syncedIndex(); got != 0 {
		t.Fatalf("synced %d before the write, want 0", got)
	}
	<-s.entered
	synced := async(func() { a.waitSynced(3) })
	waitsForGate(t, s, synced, "waitSynced(3)")
	if got := a.syncedIndex(); got != 3 {
		t.Fatalf("synced %d after the write, want 3", got)
	}
	if last, err := a.LastIndex(); err != nil || last != 3 {
		t.Fatalf("LastIndex %d, %v; want 3", last, err)
	}
}

// TestAsyncLogWritesNow: what must be on disk before raft acts on it is
// written before StoreLogs returns: a configuration change, any write of a
// follower, and a leader's that is its configuration's only voter.
func TestAsyncLogWritesNow(t *testing.T) {
	cases := []struct {
		name  string
		setup func(a *asyncLog)
		typ   raft.LogType
	}{
		{"configuration", func(*asyncLog) {}, raft.LogConfiguration},
		{"follower", func(a *asyncLog) {
			f := func() bool { return false }
			a.leading.Store(&f)
		}, raft.LogCommand},
		{"lone voter", func(a *asyncLog) {
			var alone atomic.Bool
			alone.Store(true)
			a.alone.Store(&alone)
		}, raft.LogCommand},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, s, _ := newTestAsyncLog(t)
			tc.setup(a)
			stored := async(func() {
				if err := a.StoreLogs(logsOf(tc.typ, 1, 1)); err != nil {
					t.Error(err)
				}
			})
			<-s.entered
			waitsForGate(t, s, stored, "StoreLogs")
			if got := a.syncedIndex(); got != 1 {
				t.Fatalf("synced %d, want 1", got)
			}
		})
	}
}

// TestAsyncLogDeleteWaitsForWrites: a deletion (a follower truncating its
// tail) comes after every deferred write, and lowers synced below it.
func TestAsyncLogDeleteWaitsForWrites(t *testing.T) {
	a, s, _ := newTestAsyncLog(t)
	if err := a.StoreLogs(logsOf(raft.LogCommand, 1, 5)); err != nil {
		t.Fatal(err)
	}
	<-s.entered
	deleted := async(func() {
		if err := a.DeleteRange(4, 5); err != nil {
			t.Error(err)
		}
	})
	waitsForGate(t, s, deleted, "DeleteRange")
	if last, _ := s.InmemStore.LastIndex(); last != 3 {
		t.Fatalf("the store's last index is %d after deleting 4-5, want 3", last)
	}
	if got := a.syncedIndex(); got != 3 {
		t.Fatalf("synced %d after deleting 4-5, want 3", got)
	}
}

// TestAsyncLogWriteFailureIsFatal: a deferred write that fails reaches the
// fatal hook before anyone waiting for it is told, and what waits is told
// the entries will never be written; the log refuses everything after.
func TestAsyncLogWriteFailureIsFatal(t *testing.T) {
	a, s, fatal := newTestAsyncLog(t)
	s.fail = errors.New("disk on fire")
	if err := a.StoreLogs(logsOf(raft.LogCommand, 1, 2)); err != nil {
		t.Fatal(err)
	}
	var synced bool
	var fatalFirst bool
	waited := async(func() {
		synced = a.waitSynced(2)
		fatalFirst = len(fatal) == 1
	})
	drained := async(func() {
		if err := a.drain(); err == nil {
			t.Error("drain after a failed write returned no error")
		}
	})
	close(s.gate)
	within(t, waited, "waitSynced to give up after the failure")
	within(t, drained, "drain to give up after the failure")
	if synced || !fatalFirst {
		t.Fatalf("waitSynced = %v, fatal hook called first: %v; want false, true", synced, fatalFirst)
	}
	if err := <-fatal; !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "1-2") {
		t.Fatalf("fatal error %q does not name the cause and the entries", err)
	}
	if err := a.StoreLogs(logsOf(raft.LogCommand, 3, 3)); err == nil {
		t.Fatal("StoreLogs after a failed write succeeded")
	}
}

// TestAsyncLogDrain: drain returns once every write deferred before it is
// made.
func TestAsyncLogDrain(t *testing.T) {
	a, s, _ := newTestAsyncLog(t)
	if err := a.StoreLogs(logsOf(raft.LogBarrier, 1, 1)); err != nil {
		t.Fatal(err)
	}
	<-s.entered
	drained := async(func() {
		if err := a.drain(); err != nil {
			t.Error(err)
		}
	})
	waitsForGate(t, s, drained, "drain")
	if got := a.syncedIndex(); got != 1 {
		t.Fatalf("synced %d after drain, want 1", got)
	}
}

// TestAsyncLogCloseWrites: Close makes the deferred writes before it
// closes the store.
func TestAsyncLogCloseWrites(t *testing.T) {
	a, s, _ := newTestAsyncLog(t)
	if err := a.StoreLogs(logsOf(raft.LogCommand, 1, 2)); err != nil {
		t.Fatal(err)
	}
	close(s.gate)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.InmemStore.LastIndex(); last != 2 {
		t.Fatalf("the store's last index is %d after Close, want 2", last)
	}
}
