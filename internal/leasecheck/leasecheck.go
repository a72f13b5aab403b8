// Package leasecheck tells a lease holder, early enough, that it can no
// longer be sure its lease is alive.
//
// The server extends a lease to TTL after it receives a keep-alive, so a
// lease whose keep-alive was sent at t and answered lives until at least
// t + TTL by the server's clock. The etcd client instead counts TTL from
// when the answer arrives (later), and checks only twice a second, so a
// holder it tells of a loss may already have a successor. Watch counts from
// the send time of its own keep-alives, less a margin, so a holder that
// stops when told has stopped before the server can expire the lease
// (given clocks that run at the same rate).
package leasecheck

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrLeaseGone is returned by Start when the server says the lease does
// not exist.
var ErrLeaseGone = errors.New("leasecheck: lease not found")

// Start proves that lease id is alive with one keep-alive, bounded by ctx,
// and returns a channel closed once that may no longer hold: the send time
// of the last answered keep-alive, plus the TTL it answered with, less a
// margin (a tenth of the TTL, at most half a second); or at once when the
// server says the lease is gone. Until then it renews the lease every third
// of its TTL. stop ends the renewals (and closes the channel); the caller
// must call it.
func Start(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) (lost <-chan struct{}, stop func(), err error) {
	sent := time.Now()
	resp, err := cli.KeepAliveOnce(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0) {
		return nil, nil, ErrLeaseGone
	}
	if err != nil {
		return nil, nil, err
	}
	ttl := time.Duration(resp.TTL) * time.Second
	life, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		watch(life, cli, id, sent.Add(ttl-margin(ttl)), ttl, sent.Add(ttl/3))
	}()
	return ch, func() { cancel(); <-ch }, nil
}

// watch renews the lease until its proven deadline passes or ctx ends.
func watch(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID, deadline time.Time, ttl time.Duration, next time.Time) {
	for {
		at := next
		if deadline.Before(at) {
			at = deadline
		}
		t := time.NewTimer(max(time.Until(at), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			return // no proof the lease is alive any more
		}
		sent := time.Now()
		// The attempt may not outlive the deadline it could extend.
		kctx, cancel := context.WithDeadline(ctx, deadline)
		resp, err := cli.KeepAliveOnce(kctx, id)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			ttl = time.Duration(resp.TTL) * time.Second
			deadline = sent.Add(ttl - margin(ttl))
			next = sent.Add(ttl / 3)
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0):
			return // the server says it is gone
		default:
			next = time.Now().Add(min(ttl/3, 200*time.Millisecond)) // try again soon
		}
	}
}

// margin is how much earlier than the server could expire the lease the
// holder is told: room for scheduling delays and clock-rate differences.
func margin(ttl time.Duration) time.Duration { return min(ttl/10, 500*time.Millisecond) }
