package compat

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The primitives speak only clientv3, so each scenario runs unchanged
// against a real etcd and against coordd.
func onEtcdAndCoordd(t *testing.T, scenario func(t *testing.T, cli *clientv3.Client)) {
	t.Run("etcd", func(t *testing.T) { scenario(t, startEtcd(t)) })
	t.Run("coordd", func(t *testing.T) {
		m := coordtest.StartSingle(t)
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		scenario(t, cli)
	})
}

func TestSemaphoreOnBoth(t *testing.T) { onEtcdAndCoordd(t, semaphoreScenario) }

func semaphoreScenario(t *testing.T, cli *clientv3.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newSem := func(id string, opts ...semaphore.Option) (*semaphore.Semaphore, *concurrency.Session) {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		s, err := semaphore.New(sess, "both", append(opts, semaphore.WithLimit(2), semaphore.WithHolderID(id))...)
		if err != nil {
			t.Fatal(err)
		}
		return s, sess
	}
	a, aSess := newSem("a", semaphore.WithQuarantine(time.Second))
	b, _ := newSem("b")
	c, _ := newSem("c")

	ga, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryAcquire(ctx); !errors.Is(err, semaphore.ErrNoSlot) {
		t.Fatalf("TryAcquire on a full semaphore: %v", err)
	}
	got := make(chan *semaphore.Grant, 1)
	go func() {
		g, err := c.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- g
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := semaphore.GetStatus(ctx, cli, "both")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("c never queued")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a's lease is lost: its slot is quarantined, then c gets it.
	lost := time.Now()
	if _, err := cli.Revoke(ctx, aSess.Lease()); err != nil {
		t.Fatal(err)
	}
	<-ga.Done()
	gc := <-got
	if gc == nil {
		t.FailNow()
	}
	if d := time.Since(lost); d < time.Second {
		t.Fatalf("c admitted %v after a's lease was lost, inside the quarantine", d)
	}
	if !(ga.Token < gb.Token && gb.Token < gc.Token) {
		t.Fatalf("tokens %d, %d, %d: not increasing", ga.Token, gb.Token, gc.Token)
	}
	for _, g := range []*semaphore.Grant{gb, gc} {
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, err := semaphore.GetStatus(ctx, cli, "both")
	if err != nil || len(st.Holders) != 0 || st.Limit != 2 {
		t.Fatalf("final status %+v %v", st, err)
	}
}
