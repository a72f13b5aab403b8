package election

import (
	"context"
	"errors"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// wakeups counts the watch responses that woke a waiting candidate, for
// the herd test.
var wakeups atomic.Int64

// Campaign makes this session a candidate with value, waits until it is
// the leader, and returns the leadership. Candidates are elected in the
// order they first campaigned (the create revision of their key). If the
// session's key exists already (a Campaign before, or a leadership still
// held), it is reused and its value set to value; its place stays.
//
// Campaign returns only once it has read, at a single revision, that its
// own key still exists and no earlier candidate's does. If the key goes
// while it waits (the lease expired or was revoked, the key was deleted),
// it returns ErrSessionLost, never a leadership that is already lost. If
// ctx ends or another error stops it, it withdraws the candidacy and
// returns the error. Failures of the moment (no raft leader, a lost
// connection) are retried until ctx ends or the session is lost.
func (e *Election) Campaign(ctx context.Context, value string) (*Leadership, error) {
	select {
	case <-e.session.Done():
		return nil, ErrSessionLost
	default:
	}
	key := e.Key()
	var token int64
	for b := (backoff{}); ; {
		var err error
		if token, err = e.enter(ctx, key, value); err == nil {
			break
		}
		if !transient(err) {
			return nil, err
		}
		if err := b.wait(ctx, e.session.Done()); err != nil {
			return nil, err
		}
	}
	l, err := e.wait(ctx, key, token)
	if errors.Is(err, ErrSessionLost) && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		e.withdraw(key, token)
		return nil, err
	}
	return l, nil
}

// enter creates the candidate key bound to the session's lease, or takes
// over the one that exists, with value. It returns the key's create
// revision: the candidate's place and future fencing token.
func (e *Election) enter(ctx context.Context, key, value string) (int64, error) {
	lease := e.session.Lease()
	for {
		resp, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value, clientv3.WithLease(lease))).
			Else(clientv3.OpGet(key)).
			Commit()
		if leaseGone(err) {
			return 0, ErrSessionLost
		}
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // a transaction is atomic: only a misbehaving server gets here
		}
		kv := kvs[0]
		if string(kv.Value) == value && kv.Lease == int64(lease) {
			return kv.CreateRevision, nil
		}
		// Set the value on the existing key, keeping its place; if the key
		// went in between, the next round creates it again.
		put, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", kv.CreateRevision)).
			Then(clientv3.OpPut(key, value, clientv3.WithLease(lease))).
			Commit()
		if leaseGone(err) {
			return 0, ErrSessionLost
		}
		if err != nil {
			return 0, err
		}
		if put.Succeeded {
			return kv.CreateRevision, nil
		}
	}
}

// wait returns the leadership once, at one revision, the candidate's key
// exists with create revision token and no key of the election was
// created before it. Until then it watches only two keys: its own, and the
// candidate just before it, whose deletion is the only event that can
// bring it closer (etcd's waitDeletes does the same; a release wakes one
// waiter, not all).
func (e *Election) wait(ctx context.Context, key string, token int64) (*Leadership, error) {
	var b backoff
	for {
		resp, err := e.cli.Txn(ctx).Then(
			clientv3.OpGet(e.pfx, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(token-1))...),
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			if !transient(err) {
				return nil, err
			}
			if err := b.wait(ctx, e.session.Done()); err != nil {
				return nil, err
			}
			continue
		}
		rev := resp.Header.Revision
		own := resp.Responses[1].GetResponseRange().Kvs
		if len(own) == 0 || own[0].CreateRevision != token {
			return nil, ErrSessionLost // etcd issue 19597: never elect a key that is gone
		}
		before := resp.Responses[0].GetResponseRange().Kvs
		if len(before) == 0 {
			l, err := e.newLeadership(ctx, key, token, rev)
			if err != nil && transient(err) {
				if err := b.wait(ctx, e.session.Done()); err != nil {
					return nil, err
				}
				continue
			}
			return l, err
		}
		woken, err := e.waitDelete(ctx, string(before[0].Key), key, token, rev)
		if err != nil {
			return nil, err
		}
		if woken {
			b.reset()
			continue
		}
		// Both watches broke without news (compaction, a closed stream):
		// read again, not too often.
		if err := b.wait(ctx, e.session.Done()); err != nil {
			return nil, err
		}
	}
}

// waitDelete watches, from rev+1, the key of the candidate before this one
// and this candidate's own key, until the first is deleted or the second
// deleted or replaced (woken), or a watch breaks (not woken).
func (e *Election) waitDelete(ctx context.Context, before, key string, token, rev int64) (woken bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prev := e.cli.Watch(wctx, before, clientv3.WithRev(rev+1))
	own := e.cli.Watch(wctx, key, clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-e.session.Done():
			return false, ErrSessionLost
		case wr, ok := <-prev:
			if !ok || wr.Canceled || wr.CompactRevision != 0 {
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					wakeups.Add(1)
					return true, nil
				}
			}
		case wr, ok := <-own:
			if !ok || wr.Canceled || wr.CompactRevision != 0 {
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != token {
					return true, nil
				}
			}
		}
	}
}

// withdraw deletes the candidate key if it is still the one this Campaign
// waited with. It runs while the session lives: once the session is gone,
// the lease takes the key with it.
func (e *Election) withdraw(key string, token int64) {
	_, _ = e.cli.Txn(e.session.Ctx()).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", token)).
		Then(clientv3.OpDelete(key)).
		Commit()
}
