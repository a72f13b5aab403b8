package election

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coordhq/coord/internal/leasecheck"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leadership is the leadership Campaign won. It lasts until Resign, the
// deletion of its key, or the loss of the session's lease; Done closes at
// the first of these this process can observe. A goroutine watches the key
// until then: call Resign when done with a leadership. Its methods are safe
// for concurrent use.
type Leadership struct {
	// Token is the fencing token: the create revision of the leader key.
	// Tokens of successive leaders of one election strictly increase.
	Token int64
	// Key is the leader key, bound to the session's lease.
	Key string
	// Revision is the store revision at which the key was seen to lead:
	// it existed and no candidate key was older.
	Revision int64

	e      *Election
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the watch goroutine
}

type leadershipKey struct{}

// FromContext returns the leadership that ctx belongs to: a context of
// Leadership.Context, the context Run passes to its function, or one
// derived from them.
func FromContext(ctx context.Context) (*Leadership, bool) {
	l, ok := ctx.Value(leadershipKey{}).(*Leadership)
	return l, ok
}

// newLeadership proves the session's lease alive and starts watching the
// leader key from rev+1, the revision after the read that elected it.
//
// The lease check (one keep-alive now, then every third of the TTL) tells
// a leader that is cut off from the cluster of its loss before the server
// can expire its lease and elect another: it counts the TTL from when its
// keep-alive was sent, as the server does, where the etcd client counts
// from the answer.
func (e *Election) newLeadership(ctx context.Context, key string, token, rev int64) (*Leadership, error) {
	l := &Leadership{Token: token, Key: key, Revision: rev, e: e}
	l.ctx, l.cancel = context.WithCancel(context.WithValue(context.Background(), leadershipKey{}, l))
	expired, stop, err := leasecheck.Start(ctx, e.cli, e.session.Lease())
	if err != nil {
		l.cancel()
		if errors.Is(err, leasecheck.ErrLeaseGone) {
			return nil, ErrSessionLost
		}
		return nil, err
	}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		defer stop()
		select {
		case <-expired:
			l.cancel()
		case <-l.ctx.Done():
		}
	}()
	go func() {
		defer l.wg.Done()
		defer l.cancel()
		l.watch(rev)
	}()
	return l, nil
}

// watch returns when the leadership is lost, resigned, or can no longer be
// verified.
func (l *Leadership) watch(rev int64) {
	var b backoff
	for {
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(l.ctx))
		lost, seen := l.follow(l.e.cli.Watch(wctx, l.Key, clientv3.WithRev(rev+1)))
		wcancel()
		if lost || l.ctx.Err() != nil {
			return
		}
		if seen > rev {
			rev = seen
			b.reset()
		}
		// The watch ended without a verdict (compaction, a broken stream,
		// a member without raft leader): look at the key itself. The read
		// is bounded, so that a lost session is noticed on the next pass.
		select {
		case <-l.e.session.Done():
			return
		default:
		}
		gctx, gcancel := context.WithTimeout(l.ctx, 5*time.Second)
		resp, err := l.e.cli.Get(gctx, l.Key)
		gcancel()
		switch {
		case l.ctx.Err() != nil:
			return
		case err != nil && !transient(err):
			return // the client is closed or refused: leadership cannot be vouched for
		case err != nil:
		case len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.Token:
			return
		default:
			rev = resp.Header.Revision
		}
		if b.wait(l.ctx, l.e.session.Done()) != nil {
			return
		}
	}
}

// follow consumes the watch of the leader key. It reports whether the
// leadership is lost and, if not, the revision the watch has seen up to.
func (l *Leadership) follow(wch clientv3.WatchChan) (lost bool, seen int64) {
	for {
		select {
		case <-l.ctx.Done():
			return true, seen
		case <-l.e.session.Done():
			return true, seen
		case wr, ok := <-wch:
			if !ok || wr.Canceled || wr.CompactRevision != 0 {
				return false, seen
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != l.Token {
					return true, seen
				}
				seen = ev.Kv.ModRevision // a proclaimed value
			}
		}
	}
}

// Done returns a channel closed when the leadership is lost or resigned.
func (l *Leadership) Done() <-chan struct{} { return l.ctx.Done() }

// Context returns a context cancelled when Done closes, for work that must
// stop when the leadership goes. FromContext finds l in it.
func (l *Leadership) Context() context.Context { return l.ctx }

// Cmp returns a comparison that holds only while this leadership is held,
// for guarded writes: cli.Txn(ctx).If(l.Cmp()).Then(...). It compares the
// leader key's create revision with Token, so it fails once the key is
// gone, even if this process has not noticed yet.
func (l *Leadership) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.Key), "=", l.Token)
}

// Proclaim sets the leader's value (an address, say) without a new
// election. It is written only if the leadership is still held, in the
// same transaction; otherwise Proclaim returns ErrNotLeader and Done
// closes. Observers see a proclaimed value as a new event with the same
// token.
func (l *Leadership) Proclaim(ctx context.Context, value string) error {
	if l.ctx.Err() != nil {
		return ErrNotLeader // lost as far as this process knows, maybe not yet on the server
	}
	resp, err := l.e.cli.Txn(ctx).
		If(l.Cmp()).
		Then(clientv3.OpPut(l.Key, value, clientv3.WithLease(l.e.session.Lease()))).
		Commit()
	if leaseGone(err) {
		l.cancel()
		return ErrNotLeader
	}
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		l.cancel()
		return ErrNotLeader
	}
	return nil
}

// Resign gives the leadership up: it deletes the leader key if it is still
// this leadership's (compared by Token, so it never deletes a later
// candidacy of the session or anybody else's key), closes Done, and waits
// for the leadership's goroutine. Resigning a leadership that is lost or
// resigned already changes nothing and returns nil. An error means the
// delete may not have happened; Done is closed anyway, and Resign may be
// called again.
func (l *Leadership) Resign(ctx context.Context) error {
	_, err := l.e.cli.Txn(ctx).
		If(l.Cmp()).
		Then(clientv3.OpDelete(l.Key)).
		Commit()
	l.stop()
	return err
}

// stop closes Done and waits for the leadership's goroutine.
func (l *Leadership) stop() {
	l.cancel()
	l.wg.Wait()
}
