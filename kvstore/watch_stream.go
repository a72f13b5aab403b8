package kvstore

import (
	"slices"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// WatchStream carries many watches to one consumer, as one etcd Watch gRPC
// stream does. The apply path never waits for the consumer: it queues
// responses up to Config.WatchQueueSize and, past that, marks the watchers
// it could not serve as unsynced; Next then catches them up from history, so
// no event is lost or duplicated and every watcher sees its events in
// revision order, the events of one revision in one response.
//
// One goroutine should consume a stream: wait on Ready, then call Next.
// Watch, Cancel, RequestProgress and Close may be called from any goroutine.
type WatchStream struct {
	s      *Store
	readyc chan struct{} // has a value when Next may have something

	// Guarded by Store.mu.
	watchers map[int64]*watcher
	nextID   int64
	unsynced int // watchers with nextRev != 0

	// mu guards the fields below. Taken after Store.mu.
	mu       sync.Mutex
	queue    []WatchResponse
	progress bool // a progress report is wanted once every watcher is synced
	closed   bool
}

// NewWatchStream opens a stream with no watches.
func (s *Store) NewWatchStream() *WatchStream {
	return &WatchStream{s: s, readyc: make(chan struct{}, 1), watchers: make(map[int64]*watcher)}
}

// Ready returns a channel that receives a value when Next may return
// responses. It is never closed.
func (ws *WatchStream) Ready() <-chan struct{} { return ws.readyc }

func (ws *WatchStream) signal() {
	select {
	case ws.readyc <- struct{}{}:
	default:
	}
}

// enqueue adds a response unless the queue is full. Called with Store.mu held.
func (ws *WatchStream) enqueue(r WatchResponse) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return true // dropped: nobody will read it
	}
	if len(ws.queue) >= ws.s.cfg.WatchQueueSize {
		return false
	}
	ws.queue = append(ws.queue, r)
	ws.signal()
	return true
}

// Watch creates a watch and returns its ID. r.WatchId 0 asks the stream to
// pick the lowest unused ID counting from 0, as etcd does. A start revision of
// 0 watches from the next revision; a start revision at or below the current
// one first replays history from it; a compacted start revision yields a
// cancellation with the compacted revision on the next read.
func (ws *WatchStream) Watch(r *pb.WatchCreateRequest) (int64, error) {
	s := ws.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if ws.isClosed() {
		return 0, ErrWatchStreamClosed
	}
	id := r.WatchId
	if id == 0 {
		for ws.watchers[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if ws.watchers[id] != nil {
		return 0, ErrWatchIDExists
	}
	if r.StartRevision < 0 {
		return 0, ErrCompacted // as etcd answers a negative start revision
	}
	w, err := newWatcher(ws, id, r)
	if err != nil {
		return 0, err
	}
	if w.startRev > 0 && w.startRev <= s.rev {
		w.nextRev = w.startRev
		w.compacted = w.startRev < s.compactRev
		ws.unsynced++
		ws.signal()
	}
	ws.watchers[id] = w
	s.hub.add(w)
	return id, nil
}

func (ws *WatchStream) isClosed() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.closed
}

// Cancel removes a watch; responses for it that were not yet read are
// dropped. It reports whether the watch existed.
func (ws *WatchStream) Cancel(id int64) bool {
	s := ws.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w := ws.watchers[id]
	if w == nil {
		return false
	}
	ws.removeLocked(w)
	ws.mu.Lock()
	ws.queue = slices.DeleteFunc(ws.queue, func(r WatchResponse) bool { return r.WatchID == id })
	ws.mu.Unlock()
	return true
}

func (ws *WatchStream) removeLocked(w *watcher) {
	delete(ws.watchers, w.id)
	ws.s.hub.remove(w)
	if w.nextRev != 0 {
		ws.unsynced--
	}
}

// RequestProgress asks for a progress report: a response with WatchID
// ProgressWatchID and the current revision, delivered once every watcher of
// the stream has been sent all events up to that revision.
func (ws *WatchStream) RequestProgress() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.progress = true
	ws.signal()
}

// Close cancels every watch of the stream. Next then fails.
func (ws *WatchStream) Close() {
	s := ws.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws.watchers {
		ws.removeLocked(w)
	}
	ws.mu.Lock()
	ws.closed = true
	ws.queue = nil
	ws.mu.Unlock()
}

// Next returns the responses ready now, without blocking: the queued live
// events, then what unsynced watchers catch up from history (at most
// Config.WatchCatchUpEvents events per watcher per call), then a requested
// progress report if every watcher is synced. When it could not catch
// everyone up, Ready has a value again.
func (ws *WatchStream) Next() ([]WatchResponse, error) {
	s := ws.s
	s.mu.RLock()
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		s.mu.RUnlock()
		return nil, ErrWatchStreamClosed
	}
	out := ws.queue
	ws.queue = nil
	var dead []*watcher
	if ws.unsynced > 0 {
		ids := make([]int64, 0, ws.unsynced)
		for id, w := range ws.watchers {
			if w.nextRev != 0 {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			w := ws.watchers[id]
			if w.compacted || w.nextRev < s.compactRev {
				out = append(out, WatchResponse{WatchID: id, Revision: s.rev, Canceled: true, CompactRevision: s.compactRev})
				dead = append(dead, w)
				continue
			}
			if r, ok := s.catchUpLocked(w); ok {
				out = append(out, r)
			}
			if w.nextRev == 0 {
				ws.unsynced--
			}
		}
	}
	if ws.progress && ws.unsynced == len(dead) {
		out = append(out, WatchResponse{WatchID: ProgressWatchID, Revision: s.rev})
		ws.progress = false
	}
	if ws.unsynced > len(dead) {
		ws.signal()
	}
	ws.mu.Unlock()
	s.mu.RUnlock()

	if len(dead) > 0 {
		s.mu.Lock()
		for _, w := range dead {
			if ws.watchers[w.id] == w {
				ws.removeLocked(w)
			}
		}
		s.mu.Unlock()
	}
	return out, nil
}

// catchUpLocked reads the events of w from history, from w.nextRev on, in
// whole revisions, and advances w. When it reaches the current revision, w
// is synced again (nextRev 0): from then on the apply path serves it, and
// since the caller holds Store.mu no revision falls between the two.
func (s *Store) catchUpLocked(w *watcher) (WatchResponse, bool) {
	maxEvents := s.cfg.WatchCatchUpEvents
	maxScan := 64 * maxEvents
	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].mod >= w.nextRev })
	var events []*mvccpb.Event
	lastRev := int64(0)
	for scanned := 0; i < len(s.log); i, scanned = i+1, scanned+1 {
		rec := s.log[i]
		if rec.mod != lastRev && (len(events) >= maxEvents || scanned >= maxScan) {
			break
		}
		lastRev = rec.mod
		if !inRange(bytesOf(rec.key), w.key, w.end) || !w.wants(rec, rec.mod) {
			continue
		}
		var prev *record
		if w.prevKV {
			if ki, ok := s.tree.Get(keyIndex{key: rec.key}); ok {
				prev = ki.eventPrev(rec, s.compactRev)
			}
		}
		events = append(events, newEvent(rec, prev))
	}
	resp := WatchResponse{WatchID: w.id, Events: events}
	if i == len(s.log) {
		w.nextRev = 0
		resp.Revision = s.rev
	} else {
		w.nextRev = s.log[i].mod
		resp.Revision = w.nextRev - 1
	}
	return resp, len(events) > 0
}
