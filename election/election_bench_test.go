package election_test

import (
	"context"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// BenchmarkFailover measures, on a single coordd member, the time from a
// leader's death (its session stops keep-alives with the key in place) to
// the return of the next candidate's Campaign, with sessions of 2 s TTL.
// It reports milliseconds per failover and that time over the TTL (the
// floor: the lease must expire first).
// Run: go test -run '^$' -bench Failover -benchtime 5x ./election
func BenchmarkFailover(b *testing.B) {
	const ttl = 2
	m := coordtest.StartSingle(b)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	campaign := func() (*concurrency.Session, *election.Election) {
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
		if err != nil {
			b.Fatal(err)
		}
		e, err := election.New(s, "bench")
		if err != nil {
			b.Fatal(err)
		}
		return s, e
	}
	leaderSess, leaderElection := campaign()
	if _, err := leaderElection.Campaign(ctx, "first"); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		nextSess, next := campaign()
		elected := make(chan error, 1)
		go func() {
			_, err := next.Campaign(ctx, "next")
			elected <- err
		}()
		waitCandidates(b, cli, 2)
		killed := time.Now()
		leaderSess.Orphan() // dies: no keep-alive, no resignation
		if err := <-elected; err != nil {
			b.Fatal(err)
		}
		total += time.Since(killed)
		leaderSess = nextSess
	}
	b.StopTimer()
	leaderSess.Close()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(per.Milliseconds()), "ms/failover")
	b.ReportMetric(per.Seconds()/ttl, "failover/TTL")
}

func waitCandidates(b *testing.B, cli *clientv3.Client, n int64) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, election.DefaultPrefix+"bench/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d candidates not queued: %v", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
