package semaphore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coordhq/coord/internal/leasecheck"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Grant is a held slot. It stays held until Release, a force-release by an
// operator, or the loss of the session's lease; Done closes at the first of
// these that this process can observe.
type Grant struct {
	// Token is the fencing token: the grant key's create revision. Tokens of
	// successive grants of one semaphore strictly increase.
	Token int64
	// HolderID is the identity the slot is held under.
	HolderID string

	s      *Semaphore
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newGrant proves the grant's lease alive and starts watching the grant
// key from rev+1: its deletion (release, force-release, expiry), the
// session's loss, or the lease's proven deadline passing ends the grant.
//
// The lease check (one keep-alive now, then every third of the TTL) is
// what makes "told before anyone else can be granted" hold even when this
// process is cut off: it counts the TTL from when its keep-alive was sent,
// as the server does, not from when the answer came. A grant held under
// another session's lease (the same holder ID in another process) is not
// renewed from here; its key and this session are watched.
func (s *Semaphore) newGrant(ctx context.Context, token, rev int64, lease clientv3.LeaseID) (*Grant, error) {
	gctx, cancel := context.WithCancel(context.Background())
	g := &Grant{Token: token, HolderID: s.id, s: s, key: s.keys.grant(s.id), ctx: gctx, cancel: cancel}
	var expired <-chan struct{}
	if lease == s.session.Lease() {
		lost, stop, err := leasecheck.Start(ctx, s.cli, lease)
		if err != nil {
			cancel()
			if errors.Is(err, leasecheck.ErrLeaseGone) {
				return nil, ErrSessionLost // the caller gives the slot back
			}
			return nil, err
		}
		expired = lost
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer stop()
			select {
			case <-lost:
				cancel()
			case <-gctx.Done():
			}
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer cancel()
		g.watch(rev, expired)
	}()
	return g, nil
}

// watch returns when the grant is lost or cancelled.
func (g *Grant) watch(rev int64, expired <-chan struct{}) {
	for {
		wctx, wcancel := context.WithCancel(g.ctx)
		wch := g.s.cli.Watch(wctx, g.key, clientv3.WithRev(rev+1))
		lost, next := g.follow(wch, expired)
		wcancel()
		if lost || g.ctx.Err() != nil {
			return
		}
		// The watch ended without a verdict (compaction, a broken stream):
		// look at the key itself, then watch again from there. The read is
		// bounded, so that a lost session is noticed on the next pass.
		select {
		case <-g.sessionDone():
			return
		default:
		}
		gctx, gcancel := context.WithTimeout(g.ctx, 5*time.Second)
		resp, err := g.s.cli.Get(gctx, g.key)
		gcancel()
		switch {
		case g.ctx.Err() != nil:
			return
		case err != nil:
			// The watch resumes where it was, never before: an earlier
			// revision would replay older grants' events of this key.
			rev = max(rev, next)
			select { // and not in a hot loop while the store is away
			case <-g.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		case len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != g.Token:
			return
		default:
			rev = resp.Header.Revision
		}
		if g.s.cli.Ctx().Err() != nil {
			return // the client is closed: nothing can be verified any more
		}
	}
}

// follow consumes watch responses; it reports whether the grant is lost,
// and otherwise the revision it has seen up to.
func (g *Grant) follow(wch clientv3.WatchChan, expired <-chan struct{}) (lost bool, seen int64) {
	sessionDone := g.sessionDone()
	for {
		select {
		case <-sessionDone:
			return true, seen
		case <-expired:
			return true, seen
		case wr, ok := <-wch:
			if !ok || wr.Canceled || wr.CompactRevision != 0 {
				return false, seen
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != g.Token {
					return true, seen
				}
			}
			seen = wr.Header.Revision
		}
	}
}

// sessionDone is the session's end, which ends a grant unless the grant is
// persistent (not bound to the session's lease): then nil, never ready.
func (g *Grant) sessionDone() <-chan struct{} {
	if g.s.persistent {
		return nil
	}
	return g.s.session.Done()
}

// Done returns a channel closed when the grant is lost or released.
func (g *Grant) Done() <-chan struct{} { return g.ctx.Done() }

// Context returns a context cancelled when the grant is lost or released,
// for work that must stop when the slot goes.
func (g *Grant) Context() context.Context { return g.ctx }

// Cmp returns a comparison that holds only while this grant is held, for
// guarded writes: clientv3.Txn(ctx).If(g.Cmp()).Then(...). Because the
// grant key is bound to the lease, it fails once the lease expired, even
// while the slot is still quarantined.
func (g *Grant) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(g.key), "=", g.Token)
}

// Release gives the slot back at once, without quarantine. It is guarded by
// the grant's token, so it can never release anybody else's grant. If the
// grant's lease expired but its slot is still quarantined in this holder's
// name, Release frees that slot too: the holder says its work is over. A
// grant that is no longer held is left alone and ErrNotHeld returned.
func (g *Grant) Release(ctx context.Context) error {
	err := g.s.release(ctx, g.Token)
	g.cancel()
	g.wg.Wait()
	return err
}

func (s *Semaphore) release(ctx context.Context, token int64) error {
	gk := s.keys.grant(s.id)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(gk), "=", token)).
		Then(clientv3.OpDelete(gk), clientv3.OpDelete(s.keys.occ(s.id)), clientv3.OpDelete(s.keys.quar(s.id))).
		Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	return s.releaseQuarantined(ctx)
}

// releaseQuarantined frees this session's slot whose grant was lost. The
// head waiter may be moving the slot into quarantine at the same moment,
// so it reads and tries again until the slot is freed or is not ours.
func (s *Semaphore) releaseQuarantined(ctx context.Context) error {
	gk, ok := s.keys.grant(s.id), s.keys.occ(s.id)
	for {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ok), clientv3.OpGet(gk)).Commit()
		if err != nil {
			return err
		}
		occ := resp.Responses[0].GetResponseRange().Kvs
		grant := resp.Responses[1].GetResponseRange().Kvs
		if len(occ) == 0 || len(grant) != 0 {
			return ErrNotHeld // freed already, or held again under a new grant
		}
		rec, err := decodeRecord(occ[0])
		if err != nil {
			return err
		}
		if rec.Lease != int64(s.session.Lease()) {
			return ErrNotHeld // quarantined, but from another session of this ID
		}
		resp, err = s.cli.Txn(ctx).
			If(
				clientv3.Compare(clientv3.ModRevision(ok), "=", occ[0].ModRevision),
				clientv3.Compare(clientv3.CreateRevision(gk), "=", 0),
			).
			Then(clientv3.OpDelete(ok), clientv3.OpDelete(s.keys.quar(s.id))).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// Release releases the slot this holder ID holds, whichever call acquired
// it; see Grant.Release. It returns ErrNotHeld if it holds none.
func (s *Semaphore) Release(ctx context.Context) error {
	resp, err := s.cli.Get(ctx, s.keys.grant(s.id))
	if err != nil {
		return err
	}
	token := int64(-1) // matches no grant: only a quarantined slot of this session is freed
	if len(resp.Kvs) == 1 {
		token = resp.Kvs[0].CreateRevision
	}
	return s.release(ctx, token)
}

// Forget stops following the grant without releasing it: Done closes, and
// the slot stays held until Release (by any participant with the holder
// ID) or ForceRelease. It is for servers that take persistent slots on
// behalf of others and must not keep a watch per slot.
func (g *Grant) Forget() {
	g.cancel()
	g.wg.Wait()
}
