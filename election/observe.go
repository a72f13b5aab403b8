package election

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leader describes the leader of an election: its key with the smallest
// create revision.
type Leader struct {
	// Key is the leader's candidate key: the election prefix, "/", and its
	// lease ID in hex.
	Key string
	// Value is what the leader campaigned with or last proclaimed.
	Value string
	// Token is the leader's fencing token, the key's create revision.
	Token int64
	// ModRevision is the revision of the last write of Value: Campaign or
	// Proclaim.
	ModRevision int64
	// Lease is the lease of the leader's session.
	Lease clientv3.LeaseID
}

func leaderOf(kv *mvccpb.KeyValue) Leader {
	return Leader{
		Key: string(kv.Key), Value: string(kv.Value), Token: kv.CreateRevision,
		ModRevision: kv.ModRevision, Lease: clientv3.LeaseID(kv.Lease),
	}
}

// newer reports whether l comes after m: a later leader, or a later value
// of the same one.
func (l Leader) newer(m Leader) bool {
	return l.Token > m.Token || (l.Token == m.Token && l.ModRevision > m.ModRevision)
}

// CurrentLeader returns the current leader of election name, read
// linearizably, or ErrNoLeader if it has no candidate. It needs no
// session; only WithPrefix applies.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, name string, opts ...Option) (Leader, error) {
	pfx, err := buildOptions(opts).prefix(name)
	if err != nil {
		return Leader{}, err
	}
	return currentLeader(ctx, cli, pfx)
}

// Leader returns the current leader of the election, as CurrentLeader.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	return currentLeader(ctx, e.cli, e.pfx)
}

func currentLeader(ctx context.Context, cli *clientv3.Client, pfx string) (Leader, error) {
	resp, err := cli.Get(ctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, err
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, ErrNoLeader
	}
	return leaderOf(resp.Kvs[0]), nil
}

// Event is a state of an election seen by Observe.
type Event struct {
	// Leader is the leader from Revision on; the zero Leader if NoLeader.
	Leader Leader
	// NoLeader says that the election had no candidate at Revision.
	NoLeader bool
	// Revision is the store revision at which the state was seen.
	Revision int64
}

// Observe follows the leader of election name and sends its states on the
// returned channel: first the current one, then each change (a new
// leader, a proclaimed value, or no leader at all). A state is sent only
// if it is newer than the last one sent (a leader by Token, then
// ModRevision; "no leader" only after a leader), so a reader never goes
// back to an older leader. A reader that falls behind is sent the latest
// state, not every one in between. Observe watches the election's whole
// prefix and, when the watch breaks (compaction, reconnection), reads the
// state again. The channel closes when ctx ends or the client is closed.
// It needs no session; only WithPrefix applies.
func Observe(ctx context.Context, cli *clientv3.Client, name string, opts ...Option) (<-chan Event, error) {
	pfx, err := buildOptions(opts).prefix(name)
	if err != nil {
		return nil, err
	}
	o := &observer{cli: cli, pfx: pfx, ch: make(chan Event)}
	go o.run(ctx)
	return o.ch, nil
}

// observer is the goroutine behind Observe; it owns every field.
type observer struct {
	cli *clientv3.Client
	pfx string
	ch  chan Event

	cands    map[string]*mvccpb.KeyValue // the candidates at the last revision applied
	accepted bool                        // a state was accepted
	last     Event                       // the last accepted state
	top      Leader                      // the newest leader accepted, kept across "no leader"
	pending  *Event                      // accepted, not yet sent
}

func (o *observer) run(ctx context.Context) {
	defer close(o.ch)
	var b backoff
	for {
		if rev, err := o.load(ctx); err == nil {
			alive, news := o.follow(ctx, rev)
			if !alive {
				return
			}
			if news {
				b.reset()
			}
		}
		if !o.pause(ctx, b.Next()) {
			return
		}
	}
}

// load reads every candidate and accepts the state they make.
func (o *observer) load(ctx context.Context) (int64, error) {
	resp, err := o.cli.Get(ctx, o.pfx, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	o.cands = make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		o.cands[string(kv.Key)] = kv
	}
	o.accept(resp.Header.Revision)
	return resp.Header.Revision, nil
}

// follow watches the prefix from rev+1, applying every revision, and sends
// accepted states as the reader takes them. It returns false when Observe
// must end (alive is false), and otherwise whether the watch had news
// before it broke.
func (o *observer) follow(ctx context.Context, rev int64) (alive, news bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := o.cli.Watch(wctx, o.pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		var out chan<- Event
		var ev Event
		if o.pending != nil {
			out, ev = o.ch, *o.pending
		}
		select {
		case <-ctx.Done():
			return false, news
		case out <- ev:
			o.pending = nil
		case wr, ok := <-wch:
			if !ok || wr.Canceled || wr.CompactRevision != 0 {
				return o.cli.Ctx().Err() == nil, news
			}
			news = news || len(wr.Events) > 0
			o.apply(wr.Events)
		}
	}
}

// apply applies watch events in order and accepts the state after each
// revision (one revision's events, a transaction's, come together).
func (o *observer) apply(evs []*clientv3.Event) {
	for i, ev := range evs {
		key := string(ev.Kv.Key)
		if ev.Type == mvccpb.DELETE {
			delete(o.cands, key)
		} else {
			o.cands[key] = ev.Kv
		}
		if i == len(evs)-1 || evs[i+1].Kv.ModRevision != ev.Kv.ModRevision {
			o.accept(ev.Kv.ModRevision)
		}
	}
}

// accept makes the candidates' state at rev the next one to send, if it
// is newer than the last accepted.
func (o *observer) accept(rev int64) {
	var first *mvccpb.KeyValue
	for _, kv := range o.cands {
		if first == nil || kv.CreateRevision < first.CreateRevision {
			first = kv
		}
	}
	ev := Event{NoLeader: first == nil, Revision: rev}
	if o.accepted && rev < o.last.Revision {
		return
	}
	if first != nil {
		ev.Leader = leaderOf(first)
		if o.accepted && !ev.Leader.newer(o.top) {
			return
		}
		o.top = ev.Leader
	} else if o.accepted && o.last.NoLeader {
		return
	}
	o.accepted, o.last, o.pending = true, ev, &ev
}

// pause waits d before the state is read again, sending accepted states
// meanwhile. It returns false when Observe must end.
func (o *observer) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		var out chan<- Event
		var ev Event
		if o.pending != nil {
			out, ev = o.ch, *o.pending
		}
		select {
		case <-ctx.Done():
			return false
		case <-o.cli.Ctx().Done():
			return false
		case out <- ev:
			o.pending = nil
		case <-t.C:
			return true
		}
	}
}
