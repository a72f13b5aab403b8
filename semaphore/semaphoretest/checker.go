package semaphoretest

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Hold is one grant as its holder saw it: when it asked, when Acquire (or
// Campaign) returned, and when it released or was told the grant was lost.
type Hold struct {
	Holder string
	// Key is the key that ranks the grant in the store (the semaphore's
	// occupancy key, the election's candidate key).
	Key   string
	Token int64
	// Rev is the revision at which the grant was made; 0 means Token
	// (a semaphore grant's token is its revision; a leadership's is the
	// revision its candidate key was created at).
	Rev               int64
	Asked, Start, End time.Time
}

func (h Hold) rev() int64 {
	if h.Rev != 0 {
		return h.Rev
	}
	return h.Token
}

// Recorder collects holds from concurrent contenders.
type Recorder struct {
	mu    sync.Mutex
	holds []Hold
}

// Add records a finished hold.
func (r *Recorder) Add(h Hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holds = append(r.holds, h)
}

// Holds returns what was recorded.
func (r *Recorder) Holds() []Hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Hold(nil), r.holds...)
}

// CheckOverlap fails the test if more than n holds were believed at one
// moment: between Acquire returning and the release or loss signal.
func CheckOverlap(t *testing.T, holds []Hold, n int) (peak int) {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, h := range holds {
		edges = append(edges, edge{h.Start, +1}, edge{h.End, -1})
	}
	// Ends sort before starts at the same instant: [Start, End) intervals.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur := 0
	for _, e := range edges {
		cur += e.delta
		if cur > n {
			t.Errorf("%d holders at %v, limit %d", cur, e.at.Format(time.StampMicro), n)
			return cur
		}
		peak = max(peak, cur)
	}
	return peak
}

// CheckTokenOrder fails the test if a grant that was asked for after
// another grant was returned has a smaller or equal token: tokens increase
// in grant order.
func CheckTokenOrder(t *testing.T, holds []Hold) {
	t.Helper()
	seen := map[int64]string{}
	for _, h := range holds {
		if prev, dup := seen[h.Token]; dup {
			t.Errorf("token %d granted to %s and to %s", h.Token, prev, h.Holder)
		}
		seen[h.Token] = h.Holder
	}
	byStart := append([]Hold(nil), holds...)
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].Start.Before(byStart[j].Start) })
	maxToken := int64(0)
	// Walk the asks in order; every grant returned before an ask began
	// must have a smaller token than that ask's grant.
	byAsk := append([]Hold(nil), holds...)
	sort.Slice(byAsk, func(i, j int) bool { return byAsk[i].Asked.Before(byAsk[j].Asked) })
	k := 0
	for _, h := range byAsk {
		for k < len(byStart) && byStart[k].Start.Before(h.Asked) {
			maxToken = max(maxToken, byStart[k].Token)
			k++
		}
		if h.Token <= maxToken {
			t.Errorf("%s asked at %v and got token %d, but token %d was granted before it asked",
				h.Holder, h.Asked.Format(time.StampMicro), h.Token, maxToken)
		}
	}
}

// CheckRanks replays every event under prefix from revision 1 and fails the
// test unless, at the revision of each grant, the hold's key exists and
// ranks among the first n live keys under prefix by create revision.
func CheckRanks(t *testing.T, cli *clientv3.Client, prefix string, holds []Hold, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Holds in grant-revision order; each is checked against the state
	// after every event up to its revision and none after.
	pending := append([]Hold(nil), holds...)
	sort.Slice(pending, func(i, j int) bool { return pending[i].rev() < pending[j].rev() })
	end := prefix + "\xff~replay-end"
	if _, err := cli.Put(ctx, end, ""); err != nil {
		t.Fatal(err)
	}
	live := map[string]int64{}     // key -> create revision
	checkUpTo := func(rev int64) { // check holds granted at revisions below rev
		for len(pending) > 0 && pending[0].rev() < rev {
			h := pending[0]
			pending = pending[1:]
			create, ok := live[h.Key]
			if !ok {
				t.Errorf("%s's key %s does not exist at its grant revision %d", h.Holder, h.Key, h.rev())
				continue
			}
			rank := 0
			for k, c := range live {
				if c < create || (c == create && k < h.Key) {
					rank++
				}
			}
			if rank >= n {
				t.Errorf("%s's key %s ranks %d among %d live keys at revision %d, limit %d", h.Holder, h.Key, rank, len(live), h.rev(), n)
			}
		}
	}
	for wr := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range wr.Events {
			checkUpTo(ev.Kv.ModRevision)
			key := string(ev.Kv.Key)
			if key == end {
				if len(pending) > 0 {
					t.Errorf("%d holds have grant revisions after the history's end", len(pending))
				}
				return
			}
			if ev.Type == mvccpb.PUT {
				live[key] = ev.Kv.CreateRevision
			} else {
				delete(live, key)
			}
		}
	}
	t.Fatal("history replay ended before its end marker")
}
