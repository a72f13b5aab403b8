package coord_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterThroughFollowers: a client on any member sees the same data;
// writes, linearizable reads and keep-alives on a follower reach the leader,
// and watches on a follower see every write.
func TestClusterThroughFollowers(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	leader := c.Leader()
	var followers []*coordtest.Member
	for _, m := range c.Members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	f1, f2 := followers[0].Client(), followers[1].Client()
	defer f1.Close()
	defer f2.Close()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := f2.Watch(wctx, "c/", clientv3.WithPrefix())

	var last int64
	for i := range 20 {
		r, err := f1.Put(ctx, fmt.Sprintf("c/%02d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatalf("put through a follower: %v", err)
		}
		last = r.Header.Revision
		g, err := f2.Get(ctx, fmt.Sprintf("c/%02d", i))
		if err != nil || len(g.Kvs) != 1 || g.Header.Revision < last {
			t.Fatalf("linearizable read on the other follower right after the write: %v %v", g, err)
		}
	}
	seen := 0
	for seen < 20 {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			seen += len(wr.Events)
		case <-ctx.Done():
			t.Fatalf("watch on a follower saw %d of 20 events", seen)
		}
	}

	lease, err := f1.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := f1.KeepAlive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case r := <-ka:
			if r == nil || r.TTL != 1 {
				t.Fatalf("keep-alive through a follower: %v", r)
			}
		case <-ctx.Done():
			t.Fatal("keep-alive through a follower stopped")
		}
	}
	for _, m := range c.Members {
		cl := m.Client()
		g, err := cl.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSerializable())
		cl.Close()
		if err != nil || g.Count != 20 {
			t.Fatalf("member %s holds %d keys: %v", m.Config.Name, g.Count, err)
		}
	}
}

// TestClusterLeaderStop stops the leader: the others elect a new one and
// accept writes; the old leader restarts on its data and catches up.
func TestClusterLeaderStop(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	old := c.Leader()
	cl := c.Follower().Client()
	defer cl.Close()
	if _, err := cl.Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	old.Stop()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err = cl.Put(wctx, "after", "2")
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no write accepted after the leader stopped: %v", err)
	}
	old.Start()
	oc := old.Client()
	defer oc.Close()
	g, err := oc.Get(ctx, "after")
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("restarted member: %v %v", g, err)
	}
}
