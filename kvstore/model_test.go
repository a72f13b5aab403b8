package kvstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// model is the reference the store is checked against: every key keeps its
// whole history in a slice and every question is answered by a linear scan.
// It is slow and obviously right.
type model struct {
	hist       map[string][]mver
	rev        int64
	compactRev int64
	leases     map[int64]int64 // id -> ttl
}

type mver struct {
	value                       string
	create, mod, version, lease int64
	deleted                     bool
}

func newModel() *model {
	return &model{hist: map[string][]mver{}, rev: 1, compactRev: -1, leases: map[int64]int64{}}
}

// at returns the live version of key at rev.
func (m *model) at(key string, rev int64) (mver, bool) {
	h := m.hist[key]
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].mod <= rev {
			return h[i], !h[i].deleted
		}
	}
	return mver{}, false
}

func (m *model) inRange(k, key, end string) bool {
	switch {
	case end == "":
		return k == key
	case end == "\x00":
		return k >= key
	default:
		return k >= key && k < end
	}
}

// keys returns the keys with any history, sorted.
func (m *model) keys() []string {
	var ks []string
	for k := range m.hist {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (v mver) kv(key string) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(v.value), CreateRevision: v.create, ModRevision: v.mod, Version: v.version, Lease: v.lease}
}

func (m *model) rangeAt(r *pb.RangeRequest, cur int64) (*pb.RangeResponse, error) {
	if len(r.Key) == 0 {
		return nil, ErrEmptyKey
	}
	rev := r.Revision
	if rev > cur {
		return nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < m.compactRev {
		return nil, ErrCompacted
	}
	var all []*mvccpb.KeyValue
	for _, k := range m.keys() {
		if v, ok := m.at(k, rev); ok && m.inRange(k, string(r.Key), string(r.RangeEnd)) {
			all = append(all, v.kv(k))
		}
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(all))}
	if r.CountOnly {
		return resp, nil
	}
	kvs := all
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	byKey := r.SortOrder == pb.RangeRequest_NONE || (r.SortOrder == pb.RangeRequest_ASCEND && r.SortTarget == pb.RangeRequest_KEY)
	if byKey && !filtered && r.Limit > 0 && int64(len(kvs)) > r.Limit+1 {
		kvs = kvs[:r.Limit+1]
	}
	var kept []*mvccpb.KeyValue
	for _, kv := range kvs {
		if (r.MinModRevision == 0 || kv.ModRevision >= r.MinModRevision) &&
			(r.MaxModRevision == 0 || kv.ModRevision <= r.MaxModRevision) &&
			(r.MinCreateRevision == 0 || kv.CreateRevision >= r.MinCreateRevision) &&
			(r.MaxCreateRevision == 0 || kv.CreateRevision <= r.MaxCreateRevision) {
			kept = append(kept, kv)
		}
	}
	sortKVs(kept, r) // etcd's own sort rules, shared on purpose: ties must order alike
	if r.Limit > 0 && int64(len(kept)) > r.Limit {
		kept = kept[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kept {
			kv.Value = nil
			if r.SortTarget != pb.RangeRequest_VALUE {
				kv.Lease = 0 // etcd reads keys_only from its index, which has no lease
			}
		}
	}
	resp.Kvs = kept
	return resp, nil
}

// write appends a version of key at revision rev.
func (m *model) write(key string, v mver) { m.hist[key] = append(m.hist[key], v) }

func (m *model) checkPut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	if r.IgnoreValue && len(r.Value) > 0 {
		return ErrValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return ErrLeaseProvided
	}
	if _, ok := m.leases[r.Lease]; r.Lease != 0 && !ok {
		return ErrLeaseNotFound
	}
	if _, ok := m.at(string(r.Key), m.rev); !ok && (r.IgnoreValue || r.IgnoreLease) {
		return ErrKeyNotFound
	}
	return nil
}

// put writes at rev (the txn's revision) and returns the prev kv.
func (m *model) put(r *pb.PutRequest, rev int64) *pb.PutResponse {
	k := string(r.Key)
	prev, ok := m.at(k, rev)
	v := mver{value: string(r.Value), create: rev, mod: rev, version: 1, lease: r.Lease}
	if ok {
		v.create, v.version = prev.create, prev.version+1
		if r.IgnoreValue {
			v.value = prev.value
		}
		if r.IgnoreLease {
			v.lease = prev.lease
		}
	}
	m.write(k, v)
	resp := &pb.PutResponse{}
	if ok && r.PrevKv {
		resp.PrevKv = prev.kv(k)
	}
	return resp
}

func (m *model) del(r *pb.DeleteRangeRequest, rev int64) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{}
	for _, k := range m.keys() {
		if v, ok := m.at(k, rev); ok && m.inRange(k, string(r.Key), string(r.RangeEnd)) {
			m.write(k, mver{mod: rev, deleted: true})
			resp.Deleted++
			if r.PrevKv {
				resp.PrevKvs = append(resp.PrevKvs, v.kv(k))
			}
		}
	}
	return resp
}

func (m *model) compare(c *pb.Compare) bool {
	matched := false
	for _, k := range m.keys() {
		v, ok := m.at(k, m.rev)
		if !ok || !m.inRange(k, string(c.Key), string(c.RangeEnd)) {
			continue
		}
		matched = true
		if !m.cmpOne(c, v) {
			return false
		}
	}
	if !matched {
		return c.Target != pb.Compare_VALUE && m.cmpOne(c, mver{})
	}
	return true
}

func (m *model) cmpOne(c *pb.Compare, v mver) bool {
	var d int
	switch c.Target {
	case pb.Compare_VALUE:
		d = strings.Compare(v.value, string(c.GetValue()))
	case pb.Compare_VERSION:
		d = cmpInt64(v.version, c.GetVersion())
	case pb.Compare_CREATE:
		d = cmpInt64(v.create, c.GetCreateRevision())
	case pb.Compare_MOD:
		d = cmpInt64(v.mod, c.GetModRevision())
	case pb.Compare_LEASE:
		d = cmpInt64(v.lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return d == 0
	case pb.Compare_NOT_EQUAL:
		return d != 0
	case pb.Compare_GREATER:
		return d > 0
	default:
		return d < 0
	}
}

// txn handles flat txns (no nesting): the generator makes no others.
func (m *model) txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok := true
	for _, c := range r.Compare {
		ok = ok && m.compare(c)
	}
	ops := r.Failure
	if ok {
		ops = r.Success
	}
	// Duplicate check over both branches, naively.
	for _, br := range [][]*pb.RequestOp{r.Success, r.Failure} {
		seen := map[string]bool{}
		for _, op := range br {
			if p := op.GetRequestPut(); p != nil {
				if seen[string(p.Key)] {
					return nil, ErrDuplicateKey
				}
				seen[string(p.Key)] = true
			}
		}
		for _, op := range br {
			d := op.GetRequestDeleteRange()
			if d == nil {
				continue
			}
			for k := range seen {
				end := string(d.RangeEnd)
				if (end == "" && k == string(d.Key)) || (end != "" && k >= string(d.Key) && k < end) {
					return nil, ErrDuplicateKey
				}
			}
		}
	}
	for _, op := range ops {
		if p := op.GetRequestPut(); p != nil {
			if err := m.checkPut(p); err != nil {
				return nil, err
			}
		}
		if rr := op.GetRequestRange(); rr != nil {
			if rr.Revision > m.rev {
				return nil, ErrFutureRev
			}
			if rr.Revision != 0 && rr.Revision < m.compactRev {
				return nil, ErrCompacted
			}
		}
	}
	rev := m.rev + 1
	wrote := false
	resp := &pb.TxnResponse{Succeeded: ok}
	histLen := map[string]int{}
	for k, h := range m.hist {
		histLen[k] = len(h)
	}
	for _, op := range ops {
		out := &pb.ResponseOp{}
		switch {
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if _, live := m.at(string(p.Key), rev); !live && (p.IgnoreValue || p.IgnoreLease) {
				// Deleted earlier in this txn: the txn fails as a whole.
				for k := range m.hist {
					if n, ok := histLen[k]; ok {
						m.hist[k] = m.hist[k][:n]
					} else {
						delete(m.hist, k)
					}
				}
				return nil, ErrKeyNotFound
			}
			pr := m.put(p, rev)
			pr.Header = &pb.ResponseHeader{Revision: rev}
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: pr}
			wrote = true
		case op.GetRequestDeleteRange() != nil:
			dr := m.del(op.GetRequestDeleteRange(), rev)
			wrote = wrote || dr.Deleted > 0
			dr.Header = &pb.ResponseHeader{Revision: m.rev}
			if wrote {
				dr.Header.Revision = rev
			}
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case op.GetRequestRange() != nil:
			cur := m.rev
			if wrote {
				cur = rev
			}
			rr, err := m.rangeAt(op.GetRequestRange(), cur)
			if err != nil {
				return nil, fmt.Errorf("model: range in txn failed after checks: %w", err)
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		}
		resp.Responses = append(resp.Responses, out)
	}
	if wrote {
		m.rev = rev
	}
	resp.Header = &pb.ResponseHeader{Revision: m.rev}
	return resp, nil
}

func (m *model) compact(rev int64) error {
	if rev <= m.compactRev {
		return ErrCompacted
	}
	if rev > m.rev {
		return ErrFutureRev
	}
	m.compactRev = rev
	// Drop what no read can reach any more, to keep the scans short.
	for k, h := range m.hist {
		keep := 0
		for i, v := range h {
			if v.mod <= rev {
				keep = i
			}
		}
		if h[keep].mod < rev && h[keep].deleted {
			keep++ // a delete exactly at rev stays, as in etcd
		}
		m.hist[k] = h[keep:]
		if len(m.hist[k]) == 0 {
			delete(m.hist, k)
		}
	}
	return nil
}

func (m *model) revoke(id int64) (int, error) {
	if _, ok := m.leases[id]; !ok {
		return 0, ErrLeaseNotFound
	}
	delete(m.leases, id)
	n := 0
	for _, k := range m.keys() {
		if v, ok := m.at(k, m.rev); ok && v.lease == id {
			m.write(k, mver{mod: m.rev + 1, deleted: true})
			n++
		}
	}
	if n > 0 {
		m.rev++
	}
	return n, nil
}

// gen makes random requests over a small key space so that keys collide.
type gen struct{ r *rand.Rand }

func (g gen) key() string {
	return fmt.Sprintf("%c/%d", 'a'+g.r.IntN(3), g.r.IntN(6))
}

func (g gen) rangeEnd(key string) string {
	switch g.r.IntN(5) {
	case 0:
		return "\x00"
	case 1:
		return string(prefixEnd(key[:2]))
	case 2:
		return g.key()
	default:
		return ""
	}
}

func (g gen) lease() int64 {
	if g.r.IntN(3) == 0 {
		return int64(1 + g.r.IntN(4))
	}
	return 0
}

func (g gen) put() *pb.PutRequest {
	r := &pb.PutRequest{Key: []byte(g.key()), Value: []byte(fmt.Sprintf("v%d", g.r.IntN(5))), Lease: g.lease(), PrevKv: g.r.IntN(2) == 0}
	switch g.r.IntN(8) {
	case 0:
		r.IgnoreValue, r.Value = true, nil
	case 1:
		r.IgnoreLease, r.Lease = true, 0
	}
	return r
}

func (g gen) del() *pb.DeleteRangeRequest {
	k := g.key()
	return &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(g.rangeEnd(k)), PrevKv: g.r.IntN(2) == 0}
}

func (g gen) rangeReq(m *model) *pb.RangeRequest {
	k := g.key()
	r := &pb.RangeRequest{Key: []byte(k), RangeEnd: []byte(g.rangeEnd(k))}
	if g.r.IntN(3) == 0 {
		r.Key = []byte{0}
		r.RangeEnd = []byte{0}
	}
	if g.r.IntN(2) == 0 {
		lo := max(m.compactRev-2, 0)
		r.Revision = lo + g.r.Int64N(m.rev-lo+3)
		if g.r.IntN(10) == 0 {
			r.Revision = -r.Revision
		}
	}
	if g.r.IntN(3) == 0 {
		r.Limit = int64(g.r.IntN(5)) - 1 // -1: no limit, as 0
	}
	if g.r.IntN(3) == 0 {
		r.SortOrder = pb.RangeRequest_SortOrder(g.r.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.r.IntN(5))
	}
	r.KeysOnly = g.r.IntN(6) == 0
	r.CountOnly = g.r.IntN(8) == 0
	if g.r.IntN(4) == 0 {
		r.MinModRevision = g.r.Int64N(m.rev + 1)
		r.MaxCreateRevision = g.r.Int64N(m.rev + 1)
	}
	if g.r.IntN(4) == 0 {
		r.MaxModRevision = g.r.Int64N(m.rev + 1)
		r.MinCreateRevision = g.r.Int64N(m.rev + 1)
	}
	return r
}

func (g gen) compare(m *model) *pb.Compare {
	k := g.key()
	c := &pb.Compare{Key: []byte(k), Result: pb.Compare_CompareResult(g.r.IntN(4)), Target: pb.Compare_CompareTarget(g.r.IntN(5))}
	if g.r.IntN(4) == 0 {
		c.RangeEnd = []byte(g.rangeEnd(k))
	}
	n := g.r.Int64N(m.rev + 1)
	switch c.Target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(fmt.Sprintf("v%d", g.r.IntN(5)))}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: n % 4}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: n}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: n}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: g.lease()}
	}
	return c
}

func (g gen) ops(m *model) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for range g.r.IntN(4) {
		switch g.r.IntN(3) {
		case 0:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: g.put()}})
		case 1:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.del()}})
		default:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq(m)}})
		}
	}
	return ops
}

func (g gen) txn(m *model) *pb.TxnRequest {
	r := &pb.TxnRequest{Success: g.ops(m), Failure: g.ops(m)}
	for range g.r.IntN(3) {
		r.Compare = append(r.Compare, g.compare(m))
	}
	return r
}

func sameResult(t *testing.T, step int, what string, got, want proto.Message, gerr, werr error) {
	t.Helper()
	if !errors.Is(gerr, werr) || (gerr == nil) != (werr == nil) {
		t.Fatalf("step %d %s: error %v, model says %v", step, what, gerr, werr)
	}
	if gerr == nil && !proto.Equal(got, want) {
		t.Fatalf("step %d %s:\n store: %v\n model: %v", step, what, got, want)
	}
}

// TestModel drives the store and the model with the same random operations
// and requires the same answer to every one of them. A watcher on every key
// must see exactly the model's history, and a snapshot restored midway must
// carry on as the original would.
func TestModel(t *testing.T) {
	steps := 100_000
	if testing.Short() {
		steps = 10_000
	}
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	g := gen{rand.New(rand.NewPCG(seed, 7))}
	m := newModel()
	s := New(Config{MaxTxnOps: 8})
	ws := s.NewWatchStream()
	if _, err := ws.Watch(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, PrevKv: true}); err != nil {
		t.Fatal(err)
	}
	watched := int64(1)        // revisions whose events the watcher has delivered
	readTxns := map[bool]int{} // txns ReadTxn answered (true) and left to Txn

	for step := range steps {
		switch op := g.r.IntN(100); {
		case op < 30:
			r := g.put()
			got, gerr := s.Put(r)
			var want *pb.PutResponse
			werr := m.checkPut(r)
			if werr == nil {
				want = m.put(r, m.rev+1)
				m.rev++
				want.Header = &pb.ResponseHeader{Revision: m.rev}
			}
			sameResult(t, step, "put", got, want, gerr, werr)
		case op < 40:
			r := g.del()
			got, gerr := s.DeleteRange(r)
			want := m.del(r, m.rev+1)
			if want.Deleted > 0 {
				m.rev++
			}
			want.Header = &pb.ResponseHeader{Revision: m.rev}
			sameResult(t, step, "delete", got, want, gerr, nil)
		case op < 65:
			r := g.rangeReq(m)
			got, gerr := s.Range(r)
			want, werr := m.rangeAt(r, m.rev)
			sameResult(t, step, fmt.Sprintf("range %v", r), got, want, gerr, werr)
		case op < 85:
			r := g.txn(m)
			// ReadTxn first: it must answer exactly the txns whose
			// chosen path writes nothing, as Txn does.
			read, isRead, rerr := s.ReadTxn(r)
			rev := m.rev
			want, werr := m.txn(r)
			readTxns[isRead]++
			if isRead {
				if m.rev != rev {
					t.Fatalf("step %d: ReadTxn answered txn %v, which wrote", step, r)
				}
				sameResult(t, step, fmt.Sprintf("read txn %v", r), read, want, rerr, werr)
			}
			got, gerr := s.Txn(r)
			sameResult(t, step, fmt.Sprintf("txn %v", r), got, want, gerr, werr)
		case op < 88:
			rev := max(m.compactRev-1, 0) + g.r.Int64N(m.rev-m.compactRev+3)
			gerr, werr := s.Compact(rev), m.compact(rev)
			sameResult(t, step, "compact", nil, nil, gerr, werr)
		case op < 93:
			id, ttl := int64(1+g.r.IntN(4)), int64(1+g.r.IntN(100))
			l, gerr := s.LeaseGrant(id, ttl)
			var werr error
			if _, ok := m.leases[id]; ok {
				werr = ErrLeaseExists
			} else {
				m.leases[id] = ttl
			}
			if gerr == nil && (l.ID != id || l.TTL != ttl) {
				t.Fatalf("step %d: grant returned %v", step, l)
			}
			sameResult(t, step, "grant", nil, nil, gerr, werr)
		case op < 97:
			id := int64(1 + g.r.IntN(4))
			l, _, gerr := s.LeaseRevoke(id)
			n, werr := m.revoke(id)
			sameResult(t, step, "revoke", nil, nil, gerr, werr)
			if gerr == nil && len(l.Keys) != n {
				t.Fatalf("step %d: revoke deleted %d keys, model %d", step, len(l.Keys), n)
			}
		case op < 98:
			var buf bytes.Buffer
			if _, err := s.Snapshot().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			restored := New(Config{MaxTxnOps: 8})
			if err := restored.Restore(&buf); err != nil {
				t.Fatalf("step %d: restore: %v", step, err)
			}
			checkSameState(t, s, restored)
			ws.Close()
			s = restored
			ws = s.NewWatchStream()
			if _, err := ws.Watch(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, PrevKv: true, StartRevision: watched + 1}); err != nil {
				t.Fatal(err)
			}
		default:
			if s.Rev() != m.rev || s.CompactRev() != m.compactRev {
				t.Fatalf("step %d: revisions %d/%d, model %d/%d", step, s.Rev(), s.CompactRev(), m.rev, m.compactRev)
			}
		}
		watched = checkWatch(t, step, ws, m, watched)
	}
	if readTxns[true] == 0 || readTxns[false] == 0 {
		t.Fatalf("ReadTxn answered %d txns and left %d: the model did not try both", readTxns[true], readTxns[false])
	}
	t.Logf("ReadTxn answered %d txns and left %d to Txn", readTxns[true], readTxns[false])
}

// checkWatch reads what the watcher delivered since revision from and checks
// it against the model's history. It returns the last revision delivered.
func checkWatch(t *testing.T, step int, ws *WatchStream, m *model, from int64) int64 {
	t.Helper()
	resps, err := ws.Next()
	if err != nil {
		t.Fatal(err)
	}
	var got []*mvccpb.Event
	for _, r := range resps {
		if r.Canceled {
			t.Fatalf("step %d: watcher cancelled: %+v", step, r)
		}
		got = append(got, r.Events...)
	}
	var want []*mvccpb.Event
	for rev := from + 1; rev <= m.rev; rev++ {
		for _, k := range m.keys() {
			h := m.hist[k]
			for _, v := range h {
				if v.mod != rev {
					continue
				}
				ev := &mvccpb.Event{Kv: v.kv(k)}
				if v.deleted {
					ev.Type = mvccpb.Event_DELETE
					ev.Kv = &mvccpb.KeyValue{Key: []byte(k), ModRevision: rev}
				}
				// etcd's prev_kv: the key at the revision before, none
				// for a create or when that revision is compacted.
				if (v.deleted || v.version > 1) && rev-1 >= m.compactRev {
					if p, ok := m.at(k, rev-1); ok {
						ev.PrevKv = p.kv(k)
					}
				}
				want = append(want, ev)
			}
		}
	}
	// Within a revision the store delivers in write order and the model
	// knows only key order; compare per revision as sets ordered by key.
	norm := func(evs []*mvccpb.Event) []*mvccpb.Event {
		sort.SliceStable(evs, func(i, j int) bool {
			if evs[i].Kv.ModRevision != evs[j].Kv.ModRevision {
				return evs[i].Kv.ModRevision < evs[j].Kv.ModRevision
			}
			return bytes.Compare(evs[i].Kv.Key, evs[j].Kv.Key) < 0
		})
		return evs
	}
	got, want = norm(got), norm(want)
	if len(got) != len(want) {
		t.Fatalf("step %d: watcher got %d events, model %d:\n%v\n%v", step, len(got), len(want), got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("step %d: event %d:\n store: %v\n model: %v", step, i, got[i], want[i])
		}
	}
	return m.rev
}

// checkSameState requires two stores to answer identically for every key at
// every revision they can still read, and to hold the same leases.
func checkSameState(t *testing.T, a, b *Store) {
	t.Helper()
	if a.Rev() != b.Rev() || a.CompactRev() != b.CompactRev() || a.Size() != b.Size() {
		t.Fatalf("restored rev/compact/size %d/%d/%d, original %d/%d/%d", b.Rev(), b.CompactRev(), b.Size(), a.Rev(), a.CompactRev(), a.Size())
	}
	for rev := max(a.CompactRev(), 1); rev <= a.Rev(); rev++ {
		r := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
		ra, erra := a.Range(r)
		rb, errb := b.Range(r)
		if erra != nil || errb != nil || !proto.Equal(ra, rb) {
			t.Fatalf("at revision %d: original %v (%v), restored %v (%v)", rev, ra, erra, rb, errb)
		}
	}
	la, lb := a.Leases(), b.Leases()
	if fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Fatalf("leases: original %v, restored %v", la, lb)
	}
	for _, l := range la {
		ka, _ := a.LeaseKeys(l.ID)
		kb, _ := b.LeaseKeys(l.ID)
		if fmt.Sprintf("%q", ka.Keys) != fmt.Sprintf("%q", kb.Keys) {
			t.Fatalf("lease %d keys: original %q, restored %q", l.ID, ka.Keys, kb.Keys)
		}
	}
}
