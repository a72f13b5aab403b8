package kvstore

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ProgressWatchID is the watch ID of a progress response: one that carries
// only the revision up to which every watcher of the stream has been sent
// all its events (etcd's clientv3.InvalidWatchID).
const ProgressWatchID = -1

// WatchResponse is what a watch stream delivers: the events of one or more
// whole revisions for one watcher, a cancellation, or a progress report.
type WatchResponse struct {
	WatchID int64
	// Revision is the revision up to which this watcher has now been sent
	// every event (the current revision for a progress report).
	Revision int64
	Events   []*mvccpb.Event
	// Canceled is set when the store cancelled the watcher. CompactRevision
	// then says why: the events it needed were compacted away.
	Canceled        bool
	CompactRevision int64
}

// watcher is one watch on a stream. While synced (nextRev == 0) it receives
// events as they are applied; while unsynced it is skipped by the apply path
// and catches up from the store's history when its stream is read.
type watcher struct {
	id       int64
	stream   *WatchStream
	key, end []byte
	startRev int64 // events below it are not delivered
	prevKV   bool
	noPut    bool
	noDelete bool

	// Guarded by Store.mu, written also under WatchStream.mu with Store.mu
	// held for reading.
	nextRev   int64 // unsynced: the next revision to read from history
	compacted bool  // its events were compacted away; cancelled on next read

	pending []*mvccpb.Event // events of the revision being applied
}

func (w *watcher) wants(rec *record, rev int64) bool {
	if rev < w.startRev {
		return false
	}
	if rec.tombstone() {
		return !w.noDelete
	}
	return !w.noPut
}

func (w *watcher) singleKey() bool { return len(w.end) == 0 }

// hub finds the watchers of an applied change. All fields are guarded by
// Store.mu.
type hub struct {
	keys    map[string][]*watcher // watchers of a single key
	ranges  []*watcher            // watchers of a range or prefix
	n       int
	touched []*watcher // scratch of notify
}

func (h *hub) init() {
	if h.keys == nil {
		h.keys = make(map[string][]*watcher)
	}
}

func (h *hub) add(w *watcher) {
	if w.singleKey() {
		h.keys[string(w.key)] = append(h.keys[string(w.key)], w)
	} else {
		h.ranges = append(h.ranges, w)
	}
	h.n++
}

func (h *hub) remove(w *watcher) {
	if w.singleKey() {
		ws := removeWatcher(h.keys[string(w.key)], w)
		if len(ws) == 0 {
			delete(h.keys, string(w.key))
		} else {
			h.keys[string(w.key)] = ws
		}
	} else {
		h.ranges = removeWatcher(h.ranges, w)
	}
	h.n--
}

func removeWatcher(ws []*watcher, w *watcher) []*watcher {
	for i, x := range ws {
		if x == w {
			ws[i] = ws[len(ws)-1]
			ws[len(ws)-1] = nil
			return ws[:len(ws)-1]
		}
	}
	return ws
}

// notify hands the changes of revision rev to every synced watcher they
// match, one response per watcher. It never blocks: a watcher whose stream
// queue is full becomes unsynced and later catches up from history.
func (h *hub) notify(rev int64, changes []change) {
	if h.n == 0 {
		return
	}
	for _, c := range changes {
		var plain, withPrev *mvccpb.Event
		add := func(w *watcher) {
			if w.nextRev != 0 || !w.wants(c.rec, rev) {
				return
			}
			var ev *mvccpb.Event
			if w.prevKV {
				if withPrev == nil {
					withPrev = newEvent(c.rec, c.prev)
				}
				ev = withPrev
			} else {
				if plain == nil {
					plain = newEvent(c.rec, nil)
				}
				ev = plain
			}
			if len(w.pending) == 0 {
				h.touched = append(h.touched, w)
			}
			w.pending = append(w.pending, ev)
		}
		for _, w := range h.keys[c.rec.key] {
			add(w)
		}
		for _, w := range h.ranges {
			if inRange(bytesOf(c.rec.key), w.key, w.end) {
				add(w)
			}
		}
	}
	for i, w := range h.touched {
		resp := WatchResponse{WatchID: w.id, Revision: rev, Events: w.pending}
		w.pending = nil
		if !w.stream.enqueue(resp) {
			w.nextRev = rev
			w.stream.unsynced++
			w.stream.signal()
		}
		h.touched[i] = nil
	}
	h.touched = h.touched[:0]
}

// compacted marks unsynced watchers that still need history below rev.
func (h *hub) compacted(rev int64) {
	mark := func(w *watcher) {
		if w.nextRev != 0 && w.nextRev < rev && !w.compacted {
			w.compacted = true
			w.stream.signal()
		}
	}
	for _, ws := range h.keys {
		for _, w := range ws {
			mark(w)
		}
	}
	for _, w := range h.ranges {
		mark(w)
	}
}

func newEvent(rec, prev *record) *mvccpb.Event {
	ev := &mvccpb.Event{}
	if rec.tombstone() {
		ev.Type = mvccpb.Event_DELETE
		ev.Kv = &mvccpb.KeyValue{Key: bytesOf(rec.key), ModRevision: rec.mod}
	} else {
		ev.Type = mvccpb.Event_PUT
		ev.Kv = toKV(rec, false)
	}
	if prev != nil {
		ev.PrevKv = toKV(prev, false)
	}
	return ev
}

// newWatcher builds a watcher from a create request; it is not registered.
func newWatcher(ws *WatchStream, id int64, r *pb.WatchCreateRequest) (*watcher, error) {
	if len(r.RangeEnd) > 0 && !(len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0) && bytes.Compare(r.Key, r.RangeEnd) >= 0 {
		return nil, ErrEmptyWatcherRange
	}
	w := &watcher{id: id, stream: ws, key: r.Key, end: r.RangeEnd, startRev: r.StartRevision, prevKV: r.PrevKv}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	return w, nil
}
