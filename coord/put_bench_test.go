package coord_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkLeaderPut3: sequential puts to the leader of three members, with
// the leader writing its log while it replicates (deferred, the default)
// and before it replicates (synchronous, as hashicorp/raft alone does).
// It reports the median latency; run the two alternately, e.g.
//
//	go test -run '^$' -bench LeaderPut3 -benchtime 1000x -count 5 ./coord
func BenchmarkLeaderPut3(b *testing.B) {
	for _, mode := range []struct {
		name     string
		deferred bool
	}{{"deferred", true}, {"synchronous", false}} {
		b.Run(mode.name, func(b *testing.B) {
			c := coordtest.StartCluster(b, 3)
			leader := c.Leader()
			leader.Server.DeferLogWrites(mode.deferred)
			reportLatency(b, sequentialPuts(b, leader), 50)
		})
	}
}

// BenchmarkPutVia3: sequential puts to the leader of three members, and
// through a follower, which forwards each to the leader on its forward
// stream (forward_stream.go). The difference of the two medians is what
// forwarding costs a write, e.g.
//
//	go test -run '^$' -bench PutVia3 -benchtime 1000x -count 3 ./coord
func BenchmarkPutVia3(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		b.Run(via, func(b *testing.B) {
			c := coordtest.StartCluster(b, 3)
			m := c.Leader()
			if via == "follower" {
				m = c.Follower()
			}
			reportLatency(b, sequentialPuts(b, m), 50, 99)
		})
	}
}

// sequentialPuts makes b.N puts through member m, one after the other, on
// the benchmark's clock, and returns their latencies.
func sequentialPuts(b *testing.B, m *coordtest.Member) []time.Duration {
	cli := m.Client()
	defer cli.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := cli.Put(ctx, "bench", "v"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	return lat
}

// BenchmarkFollowerWatchLag3: a put to the leader of three members, alone
// (5 ms after the one before), until a watcher on a follower sees it. The
// follower learns the put is committed from the leader's announcement
// (announce.go). It reports the median and the 99th percentile, e.g.
//
//	go test -run '^$' -bench FollowerWatchLag3 -benchtime 300x ./coord
func BenchmarkFollowerWatchLag3(b *testing.B) {
	c := coordtest.StartCluster(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fc := c.Follower().Client()
	defer fc.Close()
	wch := fc.Watch(ctx, "lag", clientv3.WithCreatedNotify())
	if wr := <-wch; !wr.Created {
		b.Fatalf("watch not created: %v", wr.Err())
	}
	lc := c.Leader().Client()
	defer lc.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := lc.Put(ctx, "lag", "v"); err != nil {
			b.Fatal(err)
		}
		if wr, ok := <-wch; !ok || wr.Err() != nil || len(wr.Events) != 1 {
			b.Fatalf("watch on the follower: %+v (open %v)", wr, ok)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		time.Sleep(5 * time.Millisecond) // the next put comes alone
		b.StartTimer()
	}
	b.StopTimer()
	reportLatency(b, lat, 50, 99)
}

// reportLatency sorts lat and reports each percentile of it in µs.
func reportLatency(b *testing.B, lat []time.Duration, percentiles ...int) {
	slices.Sort(lat)
	for _, p := range percentiles {
		b.ReportMetric(float64(lat[len(lat)*p/100].Microseconds()), fmt.Sprintf("p%d-µs", p))
	}
}
