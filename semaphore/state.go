package semaphore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errBadRecord is a value under the semaphore's prefix this package did not
// write; it is reported, never guessed around.
var errBadRecord = errors.New("semaphore: unreadable record")

// record is the JSON value of queue, grant and occupancy keys.
type record struct {
	ID    string    `json:"id"`
	Value string    `json:"value,omitempty"`
	Since time.Time `json:"since"`
	// Lease is the holder's session lease (0 for a persistent grant).
	Lease int64 `json:"lease"`
	// QueueRev is the queue entry of the Acquire call that made a grant,
	// so that a call that fails after its grant committed gives it back.
	QueueRev int64 `json:"queue_rev,omitempty"`
	// QuarantineSeconds is how long the slot stays taken after the lease
	// expires (occupancy keys only); QuarantineLease is the lease that
	// measures it, once the quarantine began.
	QuarantineSeconds int64 `json:"quarantine_seconds,omitempty"`
	QuarantineLease   int64 `json:"quarantine_lease,omitempty"`
}

func (r record) encode() string {
	b, _ := json.Marshal(r) // a struct of strings, ints and a time: cannot fail
	return string(b)
}

func decodeRecord(kv *mvccpb.KeyValue) (record, error) {
	var r record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return r, fmt.Errorf("%w at %q: %v", errBadRecord, kv.Key, err)
	}
	return r, nil
}

// slot is a taken slot: its occupancy key, and whether the grant is live.
type slot struct {
	id   string
	occ  *mvccpb.KeyValue
	rec  record
	live bool // the grant key (lease-bound) exists
	// quarantining: the quarantine lease's key exists.
	quarantining bool
	grant        *mvccpb.KeyValue
}

// state is one consistent read of a semaphore, at revision rev.
type state struct {
	rev      int64
	limit    int
	limitMod int64 // 0: the limit key does not exist yet
	slots    []slot
	// grants whose occupancy key is missing: only in the instant of a
	// force-release by an older client; they do not count.
	grants map[string]*mvccpb.KeyValue

	// The reader's own queue entry and its place in the queue; zero when
	// the read was not made for a queued participant.
	queueRev int64
	ahead    int // waiters with an older queue entry, counted up to a cap
	// aheadCapped: the count hit its cap, more waiters may be ahead.
	aheadCapped bool
	pred        string // the queue key just before the reader's, if any
}

func (st *state) taken() int { return len(st.slots) }

func (st *state) free() int { return st.limit - st.taken() }

func (st *state) slot(id string) *slot {
	for i := range st.slots {
		if st.slots[i].id == id {
			return &st.slots[i]
		}
	}
	return nil
}

// stateOps reads grants, limit, occupancy and quarantine keys.
func (k keys) stateOps() clientv3.Op {
	from, to := k.stateRange()
	return clientv3.OpGet(from, clientv3.WithRange(to))
}

// parseState fills st from the response to stateOps.
func (k keys) parseState(st *state, kvs []*mvccpb.KeyValue) error {
	occ := map[string]*mvccpb.KeyValue{}
	quar := map[string]bool{}
	st.grants = map[string]*mvccpb.KeyValue{}
	var order []string
	for _, kv := range kvs {
		rest := strings.TrimPrefix(string(kv.Key), k.pfx)
		switch {
		case rest == "limit":
			n, err := strconv.Atoi(string(kv.Value))
			if err != nil || n < 0 {
				return fmt.Errorf("%w: stored limit %q at %s", ErrBadLimit, kv.Value, kv.Key)
			}
			st.limit, st.limitMod = n, kv.ModRevision
		case strings.HasPrefix(rest, "g/"):
			st.grants[rest[2:]] = kv
		case strings.HasPrefix(rest, "o/"):
			occ[rest[2:]] = kv
			order = append(order, rest[2:])
		case strings.HasPrefix(rest, "p/"):
			quar[rest[2:]] = true
		}
	}
	st.slots = st.slots[:0]
	for _, id := range order {
		kv := occ[id]
		rec, err := decodeRecord(kv)
		if err != nil {
			return err
		}
		g := st.grants[id]
		st.slots = append(st.slots, slot{id: id, occ: kv, rec: rec, live: g != nil, quarantining: quar[id], grant: g})
	}
	return nil
}

// readState reads the semaphore, and the reader's place in the queue when
// queueRev is its queue entry's create revision.
//
// A range's count ignores revision filters (as in etcd), so the waiters
// ahead are fetched as keys, at most as many as the last known limit:
// admission only asks whether fewer waiters are ahead than slots are free.
func (s *Semaphore) readState(ctx context.Context, queueRev int64) (*state, error) {
	ops := []clientv3.Op{s.keys.stateOps(), clientv3.OpGet(s.keys.queue(s.id))}
	aheadLimit := max(int64(s.knownLimit()), 1)
	if queueRev > 0 {
		ops = append(ops,
			clientv3.OpGet(s.keys.queuePrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(queueRev-1),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(aheadLimit)),
			clientv3.OpGet(s.keys.queuePrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(queueRev-1),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(1)))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	st := &state{rev: resp.Header.Revision}
	if err := s.keys.parseState(st, resp.Responses[0].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	if st.limitMod != 0 {
		s.setKnownLimit(st.limit)
	}
	if own := resp.Responses[1].GetResponseRange().Kvs; len(own) == 1 {
		st.queueRev = own[0].CreateRevision
	}
	if queueRev > 0 && st.queueRev == queueRev {
		st.ahead = len(resp.Responses[2].GetResponseRange().Kvs)
		st.aheadCapped = int64(st.ahead) == aheadLimit
		if p := resp.Responses[3].GetResponseRange().Kvs; len(p) == 1 {
			st.pred = string(p[0].Key)
		}
	}
	return st, nil
}
