package election_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	"github.com/coordhq/coord/semaphore/semaphoretest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// TestOneLeaderUnderFaults: 20 candidates on a three-member cluster
// campaign, lead briefly and resign, while leaders' sessions are killed
// (keep-alives stop with the key in place, as a dead process's would), a
// member is partitioned and the raft leader is killed and restarted.
// Then: (a) at no moment did two candidates believe they led; (b) at its
// election revision every leader's key had the smallest create revision
// under the election's prefix, replaying the store's history; (c) tokens
// increase in election order; and an observer never went back to an older
// leader.
func TestOneLeaderUnderFaults(t *testing.T) {
	const candidates, termsWanted = 20, 30
	c := coordtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	obsCli := c.Members[0].Client()
	defer obsCli.Close()
	events, err := election.Observe(ctx, obsCli, "faults")
	if err != nil {
		t.Fatal(err)
	}
	observed := make(chan []election.Event, 1)
	go func() {
		var seen []election.Event
		for ev := range events {
			seen = append(seen, ev)
		}
		observed <- seen
	}()

	var rec semaphoretest.Recorder
	var terms, kills atomic.Int64
	var wg sync.WaitGroup
	for i := range candidates {
		m := c.Members[i%len(c.Members)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Error(err)
				return
			}
			defer cli.Close()
			for round := 0; ctx.Err() == nil && terms.Load() < termsWanted; round++ {
				h, killed, ok := leadOnce(ctx, cli, fmt.Sprintf("c%02d-%d", i, round), func() bool { return terms.Add(1)%6 == 0 })
				if ok {
					rec.Add(h)
				}
				if killed {
					kills.Add(1)
				}
			}
		}()
	}

	waitTerms := func(n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for terms.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitTerms(termsWanted / 4)
	cut := c.Follower()
	cut.Isolate(true)
	t.Logf("partitioned %s at %d terms", cut.Config.Name, terms.Load())
	waitTerms(termsWanted / 2)
	cut.Isolate(false)
	leader := c.Leader()
	leader.Kill()
	t.Logf("killed leader %s at %d terms", leader.Config.Name, terms.Load())
	waitTerms(3 * termsWanted / 4)
	leader.Start()
	waitTerms(termsWanted)
	cancel()
	wg.Wait()

	holds := rec.Holds()
	if len(holds) < termsWanted {
		t.Fatalf("only %d terms in time (want %d)", len(holds), termsWanted)
	}
	if kills.Load() == 0 {
		t.Fatal("no leader's session was killed: lease expiry went untested")
	}
	semaphoretest.CheckOverlap(t, holds, 1)
	semaphoretest.CheckTokenOrder(t, holds)
	cli := c.Leader().Client()
	defer cli.Close()
	semaphoretest.CheckRanks(t, cli, election.DefaultPrefix+"faults/", holds, 1)

	seen := <-observed
	var last election.Leader
	leaders := 0
	for _, ev := range seen {
		if ev.NoLeader {
			continue
		}
		l := ev.Leader
		if l.Token < last.Token || (l.Token == last.Token && l.ModRevision < last.ModRevision) {
			t.Errorf("observer went back from token %d to %d", last.Token, l.Token)
		}
		if l.Token != last.Token {
			leaders++
		}
		last = l
	}
	if leaders < 2 {
		t.Errorf("observer saw %d leaders", leaders)
	}
	t.Logf("%d terms, %d killed sessions, observer saw %d events, %d leaders", len(holds), kills.Load(), len(seen), leaders)
}

// leadOnce campaigns with a fresh session, leads briefly and resigns, or,
// when kill says so, kills the session while leading.
func leadOnce(ctx context.Context, cli *clientv3.Client, id string, kill func() bool) (h semaphoretest.Hold, killed, ok bool) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(2), concurrency.WithContext(ctx))
	if err != nil {
		return h, false, false
	}
	defer func() {
		if !killed {
			sess.Close() // a killed session is left to expire, not revoked
		}
	}()
	e, err := election.New(sess, "faults")
	if err != nil {
		return h, false, false
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	h = semaphoretest.Hold{Holder: id, Key: e.Key(), Asked: time.Now()}
	l, err := e.Campaign(cctx, id)
	if err != nil {
		return h, false, false
	}
	h.Start, h.Token, h.Rev = time.Now(), l.Token, l.Revision
	if kill() {
		h.End = time.Now() // dead: no more keep-alives, no resignation
		sess.Orphan()
		killed = true
		return h, true, true
	}
	select {
	case <-time.After(50 * time.Millisecond):
	case <-l.Done():
	}
	h.End = time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	l.Resign(rctx)
	rcancel()
	return h, false, true
}
