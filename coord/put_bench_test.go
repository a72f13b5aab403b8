package coord_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
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
			cli := leader.Client()
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
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		})
	}
}
