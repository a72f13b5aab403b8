package harness

import (
	"context"
	"testing"
	"time"
)

// tinyParams make every workload run in well under a second.
func tinyParams() Params {
	return Params{
		Duration:         300 * time.Millisecond,
		RequestTimeout:   5 * time.Second,
		MaxOps:           100_000,
		Keyspace:         500,
		ValueSize:        256,
		Conns:            2,
		Clients:          4,
		TxnClients:       4,
		TxnKeys:          8,
		LeaseClients:     4,
		Watchers:         8,
		WatchRate:        50,
		SemaphoreClients: 5,
		SemaphoreLimit:   2,
		CoordClients:     4,
		LoadKeys:         2000,
		LoadBatch:        50,
		LoadClients:      4,
		KillWarmup:       200 * time.Millisecond,
		RecoveryTimeout:  30 * time.Second,
	}
}

// TestWorkloads runs every workload briefly against real coordd and etcd
// processes and checks that the numbers are sane.
func TestWorkloads(t *testing.T) {
	p := tinyParams()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Binaries: testBinaries, Dir: t.TempDir(), Runs: 1, Params: p}
	for _, sys := range []System{Coordd, Etcd} {
		t.Run(string(sys), func(t *testing.T) {
			for _, w := range Workloads() {
				t.Run(w.Name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					c := Case{Workload: w, Nodes: w.Nodes[0]}
					res, err := RunCase(ctx, cfg, c, sys)
					if err != nil {
						t.Fatal(err)
					}
					checkSane(t, c, p, res)
				})
			}
		})
	}
}

// checkSane checks what every result must satisfy, and what each
// workload's own metrics must.
func checkSane(t *testing.T, c Case, p Params, r *Result) {
	t.Helper()
	m := r.Metrics
	t.Logf("%d ops, %d errors (%s), metrics %v", r.Ops, r.Errors, r.FirstError, m)
	if r.Ops <= 0 {
		t.Errorf("ops = %d, want > 0", r.Ops)
	}
	if r.Errors > r.Ops/100 {
		t.Errorf("errors = %d of %d ops (first: %s), want at most 1%%", r.Errors, r.Ops, r.FirstError)
	}
	if m[MetricCPU] < 0 || m[MetricPeakRSS] <= 0 {
		t.Errorf("CPU %v s, peak RSS %v MiB: want >= 0 and > 0", m[MetricCPU], m[MetricPeakRSS])
	}
	if p50, ok := m[MetricP50]; ok {
		if p99 := m[MetricP99]; p50 <= 0 || p99 < p50 {
			t.Errorf("p50 %v ms, p99 %v ms: want 0 < p50 <= p99", p50, p99)
		}
		if m[MetricThroughput] <= 0 {
			t.Errorf("throughput %v, want > 0", m[MetricThroughput])
		}
	}
	switch c.Workload.Name {
	case "txn-64":
		if s := m[MetricTxnSuccess]; s <= 0 || s > 100 {
			t.Errorf("txn success %v%%, want in (0, 100]", s)
		}
	case "watch-1000":
		puts := int64(m[MetricPuts])
		if puts <= 0 || r.Ops != puts*int64(p.Watchers) || m[MetricEventsMissing] != 0 {
			t.Errorf("%d events for %d puts and %d watchers (%v missing), want every event", r.Ops, puts, p.Watchers, m[MetricEventsMissing])
		}
	case "semaphore-100":
		if h := m[MetricMaxHolders]; h < 1 || h > float64(p.SemaphoreLimit) {
			t.Errorf("max holders %v, want 1..%d", h, p.SemaphoreLimit)
		}
	case "load-1m":
		if m[MetricKeysAfterStart] != float64(p.LoadKeys) || m[MetricRestart] <= 0 || m[MetricRestartRSS] <= 0 {
			t.Errorf("%v keys after a restart of %v s (RSS %v MiB), want %d keys and > 0", m[MetricKeysAfterStart], m[MetricRestart], m[MetricRestartRSS], p.LoadKeys)
		}
	case "leader-kill":
		if s := m[MetricTimeToWrites]; s <= 0 || s > p.RecoveryTimeout.Seconds() {
			t.Errorf("time to writes %v s, want in (0, %v]", s, p.RecoveryTimeout.Seconds())
		}
	}
}
