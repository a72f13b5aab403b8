package leasecheck_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/internal/leasecheck"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// A holder cut off from the cluster is told while the server still has its
// lease: never after a successor could have been granted.
func TestToldBeforeServerExpiry(t *testing.T) {
	m := coordtest.StartSingle(t)
	proxy := coordtest.NewProxy(t, m.Endpoint())
	holder, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	observer := m.Client()
	defer observer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lease, err := holder.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	lost, stop, err := leasecheck.Start(ctx, holder, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// Renewals keep it alive well past one TTL while connected.
	select {
	case <-lost:
		t.Fatal("lost while connected")
	case <-time.After(3 * time.Second):
	}
	proxy.Cut(true)
	cutAt := time.Now()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("not told within 10s of the cut")
	}
	told := time.Since(cutAt)
	ttl, err := observer.TimeToLive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	// TTL is whole seconds left, rounded down; -1 means gone.
	if ttl.TTL < 0 {
		t.Fatalf("told %v after the cut, but the server had expired the lease already", told)
	}
	t.Logf("told %v after the cut; the server still had the lease (%ds left, rounded down)", told, ttl.TTL)
	if told > 2*time.Second {
		t.Fatalf("told %v after the cut: later than the TTL", told)
	}
}

func TestGoneLease(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	lost, stop, err := leasecheck.Start(ctx, cli, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	// Told at the next renewal, a third of the TTL later at most.
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("not told that the lease was revoked")
	}
	stop()
	if _, _, err := leasecheck.Start(ctx, cli, lease.ID); !errors.Is(err, leasecheck.ErrLeaseGone) {
		t.Fatalf("Start on a revoked lease: %v, want ErrLeaseGone", err)
	}
}
