package harness

import (
	"slices"
	"time"
)

// Metric names, as the report shows them. Every workload reports the first
// group where it makes sense; the runner adds the resource ones.
const (
	MetricThroughput = "throughput ops/s"
	MetricP50        = "p50 ms"
	MetricP99        = "p99 ms"
	MetricErrors     = "errors"
	MetricCPU        = "CPU s"
	MetricCPUPerOp   = "CPU µs/op"
	MetricPeakRSS    = "peak RSS MiB"

	MetricTxnSuccess     = "txn success %"
	MetricEventsMissing  = "events missing"
	MetricPuts           = "puts"
	MetricPutRate        = "puts/s"
	MetricMaxHolders     = "max holders seen"
	MetricRestart        = "restart-to-serving s"
	MetricRestartRSS     = "restart peak RSS MiB"
	MetricTimeToWrites   = "time-to-writes s"
	MetricFailedWrites   = "failed writes"
	MetricKeysAfterStart = "keys after restart"
)

// metricOrder is the order of metrics in the report; others follow by name.
var metricOrder = []string{
	MetricThroughput, MetricP50, MetricP99,
	MetricTxnSuccess, MetricPuts, MetricPutRate, MetricEventsMissing, MetricMaxHolders,
	MetricRestart, MetricRestartRSS, MetricKeysAfterStart,
	MetricTimeToWrites, MetricFailedWrites,
	MetricErrors, MetricCPU, MetricCPUPerOp, MetricPeakRSS,
}

// sortMetrics sorts metric names in report order.
func sortMetrics(names []string) {
	rank := func(n string) int {
		if i := slices.Index(metricOrder, n); i >= 0 {
			return i
		}
		return len(metricOrder)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
}

// Result is what one workload run measured on one system.
type Result struct {
	// Ops counts the successful operations (requests, cycles, events).
	Ops int64 `json:"ops"`
	// Errors counts the failed requests, but not those cut off when the
	// run ended.
	Errors int64 `json:"errors"`
	// FirstError is the first failure, if any, for the report.
	FirstError string `json:"first_error,omitempty"`
	// Elapsed is the length of the measured phase.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Metrics holds every number of the run by metric name.
	Metrics map[string]float64 `json:"metrics"`
}

func newResult() *Result { return &Result{Metrics: map[string]float64{}} }

const mib = 1 << 20
