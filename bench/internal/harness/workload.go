package harness

import (
	"context"
	"fmt"
	"time"
)

// Params size the workloads. DefaultParams is the full benchmark,
// QuickParams a short one; tests shrink them further.
type Params struct {
	// Duration is the measured phase of the timed workloads.
	Duration time.Duration
	// RequestTimeout bounds every request.
	RequestTimeout time.Duration
	// MaxOps bounds the requests of one timed workload run.
	MaxOps int64
	// Keyspace is the number of distinct keys of put, range and txn.
	Keyspace int
	// ValueSize is the size of every value written.
	ValueSize int
	// Conns is the number of clients (gRPC connections) the many-client
	// workloads spread their workers over.
	Conns int
	// Clients is the number of workers of put-256 and range-*-256.
	Clients int
	// TxnClients is the number of workers of txn-64.
	TxnClients int
	// TxnKeys is the number of keys txn-64 compares and sets.
	TxnKeys int
	// LeaseClients is the number of workers of lease-64.
	LeaseClients int
	// Watchers and WatchRate are the watchers of watch-1000 and the puts
	// per second they watch. The default, 20 puts/s to 1000 watchers, is
	// 20,000 events/s: well below what either server delivers on 2 cores,
	// so that the latency measured is that of delivery, not of a queue.
	Watchers  int
	WatchRate int
	// SemaphoreClients contend for a semaphore of SemaphoreLimit slots.
	SemaphoreClients int
	SemaphoreLimit   int
	// CoordClients is the number of workers of coordination.
	CoordClients int
	// LoadKeys are loaded by load-1m, LoadBatch puts per txn, by
	// LoadClients workers.
	LoadKeys    int
	LoadBatch   int
	LoadClients int
	// KillWarmup is how long leader-kill writes before it kills.
	KillWarmup time.Duration
	// RecoveryTimeout bounds the wait for a restarted member to serve, or
	// for a cluster that lost its leader to take writes.
	RecoveryTimeout time.Duration
}

// DefaultParams returns the full benchmark's sizes.
func DefaultParams() Params {
	return Params{
		Duration:         10 * time.Second,
		RequestTimeout:   5 * time.Second,
		MaxOps:           5_000_000,
		Keyspace:         100_000,
		ValueSize:        256,
		Conns:            16,
		Clients:          256,
		TxnClients:       64,
		TxnKeys:          1000,
		LeaseClients:     64,
		Watchers:         1000,
		WatchRate:        20,
		SemaphoreClients: 100,
		SemaphoreLimit:   3,
		CoordClients:     32,
		LoadKeys:         1_000_000,
		LoadBatch:        100,
		LoadClients:      32,
		KillWarmup:       2 * time.Second,
		RecoveryTimeout:  2 * time.Minute,
	}
}

// QuickParams returns the sizes of --quick: the same clients, fewer keys,
// and runs short enough for the whole benchmark to take about 3 minutes
// on 2 cores, where starting the 72 clusters alone takes over a minute.
func QuickParams() Params {
	p := DefaultParams()
	p.Duration = 600 * time.Millisecond
	p.Keyspace = 10_000
	p.LoadKeys = 100_000
	p.KillWarmup = 300 * time.Millisecond
	return p
}

// Validate says whether the sizes make sense.
func (p Params) Validate() error {
	pos := map[string]int{
		"keyspace": p.Keyspace, "value size": p.ValueSize, "conns": p.Conns, "clients": p.Clients,
		"txn clients": p.TxnClients, "txn keys": p.TxnKeys, "lease clients": p.LeaseClients,
		"watchers": p.Watchers, "watch rate": p.WatchRate, "semaphore clients": p.SemaphoreClients,
		"semaphore limit": p.SemaphoreLimit, "coordination clients": p.CoordClients,
		"load keys": p.LoadKeys, "load batch": p.LoadBatch, "load clients": p.LoadClients,
	}
	for name, v := range pos {
		if v < 1 {
			return fmt.Errorf("harness: %s must be positive, not %d", name, v)
		}
	}
	switch {
	case p.Duration <= 0 || p.RequestTimeout <= 0 || p.RecoveryTimeout <= 0:
		return fmt.Errorf("harness: durations and timeouts must be positive")
	case p.ValueSize < stampSize:
		return fmt.Errorf("harness: value size %d is below the %d bytes of a watch time stamp", p.ValueSize, stampSize)
	}
	return nil
}

// Workload is one benchmark. Run measures it on a running cluster; it
// returns an error only if the workload could not be measured at all.
type Workload struct {
	// Name identifies it on the command line (--only).
	Name string
	// Doc says in a line what it does.
	Doc string
	// Nodes lists the cluster sizes it runs on.
	Nodes []int
	// Targets are what coordd must achieve against etcd.
	Targets []Target
	// Run measures the workload.
	Run func(ctx context.Context, env *Env) (*Result, error)
}

// Target is a bound on the ratio coordd/etcd of one metric.
type Target struct {
	Metric string
	// Nodes is the cluster size it applies to; 0 for all.
	Nodes int
	// AtLeast: the ratio must be at least Ratio; otherwise at most.
	AtLeast bool
	Ratio   float64
}

// String renders the target as the report shows it.
func (t Target) String() string {
	if t.AtLeast {
		return fmt.Sprintf("≥%.2f", t.Ratio)
	}
	return fmt.Sprintf("≤%.2f", t.Ratio)
}

// Met reports whether ratio meets the target.
func (t Target) Met(ratio float64) bool {
	if t.AtLeast {
		return ratio >= t.Ratio
	}
	return ratio <= t.Ratio
}

// target returns the target of metric on nodes, if w has one.
func (w Workload) target(metric string, nodes int) (Target, bool) {
	for _, t := range w.Targets {
		if t.Metric == metric && (t.Nodes == 0 || t.Nodes == nodes) {
			return t, true
		}
	}
	return Target{}, false
}

// Workloads returns every workload, in report order.
func Workloads() []Workload {
	both := []int{1, 3}
	return []Workload{
		{Name: "put-1", Doc: "put, 1 client, sequential", Nodes: both, Run: runPut1,
			Targets: []Target{{Metric: MetricP50, Ratio: 0.8}}},
		{Name: "put-256", Doc: "put, 256 clients over 16 connections", Nodes: both, Run: runPutMany,
			Targets: []Target{{Metric: MetricThroughput, AtLeast: true, Ratio: 1.2}}},
		{Name: "range-lin-256", Doc: "linearizable point get, 256 clients", Nodes: both, Run: runRangeLinearizable,
			Targets: []Target{{Metric: MetricThroughput, AtLeast: true, Ratio: 1.2}}},
		{Name: "range-ser-256", Doc: "serializable point get, 256 clients", Nodes: both, Run: runRangeSerializable},
		{Name: "txn-64", Doc: "txn compare-and-put (else get), 64 clients on shared keys", Nodes: both, Run: runTxn,
			Targets: []Target{{Metric: MetricThroughput, AtLeast: true, Ratio: 1.2}}},
		{Name: "lease-64", Doc: "lease KeepAliveOnce, 64 clients", Nodes: both, Run: runLease,
			Targets: []Target{{Metric: MetricThroughput, AtLeast: true, Ratio: 1.5}}},
		{Name: "watch-1000", Doc: "1000 prefix watchers, fixed put rate; events/s and put-to-event latency", Nodes: both, Run: runWatch,
			Targets: []Target{{Metric: MetricP99, Ratio: 1.0}}},
		{Name: "semaphore-100", Doc: "100 contenders acquire/release a semaphore of 3 slots; cycles/s", Nodes: both, Run: runSemaphore},
		{Name: "coordination", Doc: "session open/close, mutex lock/unlock, election campaign/resign; ops/s", Nodes: both, Run: runCoordination},
		{Name: "load-1m", Doc: "load 1M keys, peak RSS; kill -9 and time restart to a linearizable get", Nodes: []int{1}, Run: runLoad,
			Targets: []Target{{Metric: MetricPeakRSS, Ratio: 0.8}, {Metric: MetricRestart, Ratio: 1.0}}},
		{Name: "leader-kill", Doc: "kill -9 the leader under writes; time until a write is accepted", Nodes: []int{3}, Run: runLeaderKill,
			Targets: []Target{{Metric: MetricTimeToWrites, Ratio: 1.0}}},
	}
}

// WorkloadByName returns the workload called name.
func WorkloadByName(name string) (Workload, bool) {
	for _, w := range Workloads() {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Env is what a workload runs against.
type Env struct {
	Cluster *Cluster
	Params  Params

	begin, end *Usage // of the measured phase
}

// Endpoints returns the client URLs of all members.
func (e *Env) Endpoints() []string { return e.Cluster.Endpoints() }

// BeginMeasure marks the start of the measured phase, after any preloading:
// the CPU time reported is counted from here. The runner calls it before
// the workload starts, so calling it is needed only after a setup phase.
func (e *Env) BeginMeasure() error {
	u, err := e.Cluster.Usage()
	if err != nil {
		return err
	}
	e.begin, e.end = &u, nil
	return nil
}

// EndMeasure marks the end of the measured phase, before any phase whose
// CPU time should not count. The runner calls it when the workload
// returns, if the workload did not.
func (e *Env) EndMeasure() error {
	u, err := e.Cluster.Usage()
	if err != nil {
		return err
	}
	e.end = &u
	return nil
}
