package semaphore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	"github.com/coordhq/coord/semaphore/semaphoretest"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// TestNeverOverAdmitsUnderFaults: contenders on a three-member cluster take
// and release slots of a 2-slot semaphore while holders crash (their client
// vanishes without releasing) and the raft leader is killed and restarted.
// At no revision of the store are more than 2 slots taken, no two grants
// share a token, and holders that stop when their grant says so never
// overlap beyond the limit.
func TestNeverOverAdmitsUnderFaults(t *testing.T) {
	const limit, contenders, grantsWanted = 2, 6, 40
	c := coordtest.StartCluster(t, 3)
	var endpoints []string
	for _, m := range c.Members {
		endpoints = append(endpoints, m.Endpoint())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var (
		inflight, maxInflight atomic.Int64
		grants, crashes       atomic.Int64
		mu                    sync.Mutex
		tokens                = map[int64]string{}
	)
	hold := func(id string, g *semaphore.Grant) {
		n := inflight.Add(1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		if prev, dup := tokens[g.Token]; dup {
			t.Errorf("token %d granted to %s and %s", g.Token, prev, id)
		}
		tokens[g.Token] = id
		mu.Unlock()
		select { // work, or stop at once when the grant is lost
		case <-time.After(30 * time.Millisecond):
		case <-g.Done():
		}
		inflight.Add(-1)
	}

	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			for round := 0; ctx.Err() == nil && grants.Load() < grantsWanted; round++ {
				cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
				if err != nil {
					t.Error(err)
					return
				}
				crashed := contend(ctx, cli, id, func(g *semaphore.Grant) bool {
					hold(id, g)
					// Every fifth grant, the holder "crashes": its client goes
					// away with the slot held, the lease expires later.
					return grants.Add(1)%5 == 0
				})
				if crashed {
					crashes.Add(1)
				}
				cli.Close()
			}
		}()
	}

	// Kill the leader while the contenders run, then bring it back.
	deadline := time.Now().Add(30 * time.Second)
	for grants.Load() < grantsWanted/3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	leader := c.Leader()
	leader.Kill()
	for grants.Load() < 2*grantsWanted/3 && time.Now().Before(deadline.Add(30*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	leader.Start()
	wg.Wait()

	if grants.Load() < grantsWanted {
		t.Fatalf("only %d grants in time (want %d)", grants.Load(), grantsWanted)
	}
	if m := maxInflight.Load(); m > limit {
		t.Fatalf("%d holders at once, limit %d", m, limit)
	}
	if crashes.Load() == 0 {
		t.Fatal("no holder crashed: the test did not test lease expiry")
	}
	cli := c.Leader().Client()
	defer cli.Close()
	peak := replayPeak(t, cli, "faults")
	t.Logf("%d grants, %d crashed holders, peak %d in process, peak %d slots in the store", grants.Load(), crashes.Load(), maxInflight.Load(), peak)
	if peak > limit {
		t.Fatalf("the store had %d slots taken at once, limit %d", peak, limit)
	}
}

// contend acquires once with a fresh session and calls hold; if hold
// reports a crash, the session is abandoned with the slot held.
func contend(ctx context.Context, cli *clientv3.Client, id string, hold func(*semaphore.Grant) (crash bool)) (crashed bool) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(2), concurrency.WithContext(ctx))
	if err != nil {
		return false
	}
	s, err := semaphore.New(sess, "faults", semaphore.WithLimit(2), semaphore.WithHolderID(fmt.Sprintf("%s-%x", id, sess.Lease())))
	if err != nil {
		sess.Close()
		return false
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	g, err := s.Acquire(actx)
	if err != nil {
		sess.Close()
		return false
	}
	if hold(g) {
		sess.Orphan() // stop keep-alives; the lease expires as a dead process's would
		cli.Close()
		<-g.Done()
		return true
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	g.Release(rctx)
	rcancel()
	sess.Close()
	return false
}

// replayPeak reads every event of the semaphore since revision 1 and
// returns the most slots (occupancy keys) that existed at one revision.
func replayPeak(t *testing.T, cli *clientv3.Client, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pfx := semaphore.DefaultPrefix + name + "/"
	end := pfx + "~replay-end" // outside every range the semaphore uses
	if _, err := cli.Put(ctx, end, ""); err != nil {
		t.Fatal(err)
	}
	occPrefix := pfx + "o/"
	wch := cli.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(1))
	taken := map[string]bool{}
	peak, events := 0, 0
	for wr := range wch {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for i, ev := range wr.Events {
			if string(ev.Kv.Key) == end {
				wch = nil
				break
			}
			if key, ok := strings.CutPrefix(string(ev.Kv.Key), occPrefix); ok {
				if ev.Type == mvccpb.PUT {
					taken[key] = true
				} else {
					delete(taken, key)
				}
				events++
			}
			// All events of one revision come in one response: count
			// after the last of them.
			if i == len(wr.Events)-1 || wr.Events[i+1].Kv.ModRevision != ev.Kv.ModRevision {
				peak = max(peak, len(taken))
			}
		}
		if wch == nil {
			break
		}
	}
	if events == 0 {
		t.Fatal("no events replayed")
	}
	return peak
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
	w := semaphoretest.NewParticipantTTL(t, memberEnv(other), "part", 2)
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
