package semaphore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	"github.com/coordhq/coord/semaphore/semaphoretest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// TestNeverOverAdmitsUnderFaults: 50 contenders on a three-member cluster
// take and release slots of a 3-slot semaphore while holders' sessions are
// killed (the client stops keep-alives with the slot held, as a dead process
// would), a member is partitioned from the others, and the leader is killed
// and restarted. Then: (a) at no moment did more than 3 contenders believe
// they held a slot; (b) at its grant revision every grant's slot ranked
// among the first 3 taken slots, replaying the store's history; (c) tokens
// increase in grant order.
func TestNeverOverAdmitsUnderFaults(t *testing.T) {
	const limit, contenders, grantsWanted = 3, 50, 120
	c := coordtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var rec semaphoretest.Recorder
	var grants, kills atomic.Int64
	var wg sync.WaitGroup
	for i := range contenders {
		m := c.Members[i%len(c.Members)] // each contender talks to one member
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Error(err)
				return
			}
			defer cli.Close()
			for round := 0; ctx.Err() == nil && grants.Load() < grantsWanted; round++ {
				id := fmt.Sprintf("c%02d-%d", i, round)
				h, killed, ok := contendOnce(ctx, cli, id, limit, func() bool { return grants.Add(1)%10 == 0 })
				if ok {
					rec.Add(h)
				}
				if killed {
					kills.Add(1)
				}
			}
		}()
	}

	waitGrants := func(n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for grants.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitGrants(grantsWanted / 4)
	cut := c.Follower()
	cut.Isolate(true)
	t.Logf("partitioned %s at %d grants", cut.Config.Name, grants.Load())
	waitGrants(grantsWanted / 2)
	cut.Isolate(false)
	leader := c.Leader()
	leader.Kill()
	t.Logf("killed leader %s at %d grants", leader.Config.Name, grants.Load())
	waitGrants(3 * grantsWanted / 4)
	leader.Start()
	t.Logf("restarted %s at %d grants", leader.Config.Name, grants.Load())
	waitGrants(grantsWanted)
	cancel() // waiters still queued give up; holders finish their hold
	wg.Wait()

	holds := rec.Holds()
	if len(holds) < grantsWanted {
		t.Fatalf("only %d grants in time (want %d)", len(holds), grantsWanted)
	}
	if kills.Load() == 0 {
		t.Fatal("no holder's session was killed: lease expiry went untested")
	}
	peak := semaphoretest.CheckOverlap(t, holds, limit)
	semaphoretest.CheckTokenOrder(t, holds)
	cli := c.Leader().Client()
	defer cli.Close()
	semaphoretest.CheckRanks(t, cli, semaphore.DefaultPrefix+"faults/o/", holds, limit)
	t.Logf("%d grants, %d killed sessions, at most %d holders at once", len(holds), kills.Load(), peak)
}

// contendOnce acquires one slot with a fresh session, holds it briefly and
// releases it, or, when kill says so, kills the session with the slot held.
// It reports the hold as the holder saw it.
func contendOnce(ctx context.Context, cli *clientv3.Client, id string, limit int, kill func() bool) (h semaphoretest.Hold, killed, ok bool) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(2), concurrency.WithContext(ctx))
	if err != nil {
		return h, false, false
	}
	killed = false
	defer func() {
		if !killed {
			sess.Close() // a killed session is left to expire, not revoked
		}
	}()
	s, err := semaphore.New(sess, "faults", semaphore.WithLimit(limit), semaphore.WithHolderID(id))
	if err != nil {
		return h, false, false
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	h = semaphoretest.Hold{Holder: id, Key: semaphore.DefaultPrefix + "faults/o/" + id, Asked: time.Now()}
	g, err := s.Acquire(actx)
	if err != nil {
		return h, false, false
	}
	h.Start, h.Token = time.Now(), g.Token
	if kill() {
		// Dead: no more keep-alives, no release. The lease expires.
		h.End = time.Now()
		sess.Orphan()
		killed = true
		return h, true, true
	}
	select { // work, or stop at once when told the slot is lost
	case <-time.After(100 * time.Millisecond):
	case <-g.Done():
	}
	h.End = time.Now() // from here on the holder does nothing under the slot
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	g.Release(rctx)
	rcancel()
	return h, false, true
}

// TestPartitionedHolderStopsBeforeNextGrant: a holder cut off from the
// cluster learns that its grant is lost (Done) before the slot goes to a
// waiter on the other side: the quarantine covers the time the cut-off
// holder needs to notice. The cluster also loses its leader meanwhile.
func TestPartitionedHolderStopsBeforeNextGrant(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	ctx := semaphoretest.Ctx(t, 60*time.Second)

	proxy := coordtest.NewProxy(t, c.Follower().Endpoint())
	hcli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer hcli.Close()
	hsess, err := concurrency.NewSession(hcli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	defer hsess.Close()
	h, err := semaphore.New(hsess, "part")
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}

	leader := c.Leader()
	var other *coordtest.Member
	for _, m := range c.Members {
		if m != leader && m.Endpoint() != c.Follower().Endpoint() {
			other = m
		}
	}
	if other == nil {
		other = c.Follower()
	}
	// The waiter's session must outlive the leader change: clientv3 gives
	// a lease up once no renewal came back for a TTL, and its renewal
	// period (TTL/3, checked every 500 ms), plus an election and its
	// 500 ms retry, came to more than 2 s here.
	w := semaphoretest.NewParticipantTTL(t, memberEnv(other), "part", 5)
	wc := semaphoretest.AcquireAsync(ctx, w)
	semaphoretest.WaitWaiters(t, w.Cli, "part", 1)

	proxy.Cut(true)
	cutAt := time.Now()
	leader.Kill() // and a leader change on top
	var holderStopped time.Time
	select {
	case <-g.Done():
		holderStopped = time.Now()
	case <-time.After(20 * time.Second):
		t.Fatal("cut-off holder never learned that its grant is lost")
	}
	gw := semaphoretest.Await(t, wc, "waiter on the other side")
	granted := time.Now()
	if !holderStopped.Before(granted) {
		t.Fatalf("waiter granted at %v, before the cut-off holder stopped at %v", granted, holderStopped)
	}
	t.Logf("holder stopped %v after the cut, %v before the next grant", holderStopped.Sub(cutAt), granted.Sub(holderStopped))
	gw.Release(ctx)
}
