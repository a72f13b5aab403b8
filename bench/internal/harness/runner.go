package harness

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Case is one workload on one cluster size.
type Case struct {
	Workload Workload
	Nodes    int
}

// Config says what Run runs.
type Config struct {
	Binaries Binaries
	// Dir is where clusters' temporary directories go (default
	// os.TempDir()).
	Dir string
	// Runs is how many times each case runs on each system.
	Runs   int
	Cases  []Case
	Params Params
	// Progress, if not nil, gets a line per run.
	Progress io.Writer
}

// Record is one run of one case on one system.
type Record struct {
	Workload string  `json:"workload"`
	Nodes    int     `json:"nodes"`
	System   System  `json:"system"`
	Run      int     `json:"run"`
	Result   *Result `json:"result,omitempty"`
	Error    string  `json:"error,omitempty"`
	// Wall is the time the run took, cluster start and stop included.
	Wall time.Duration `json:"wall_ns"`
}

// Run runs every case cfg.Runs times on each system, on a fresh cluster
// each time. Within run r, each case runs on coordd then etcd, in the
// other order when r is even. A run that fails is recorded with its error;
// Run itself fails only when ctx ends, returning the records of the runs
// that completed.
func Run(ctx context.Context, cfg Config) ([]Record, error) {
	if err := cfg.Params.Validate(); err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	total := cfg.Runs * len(cfg.Cases) * 2
	var records []Record
	for r := 1; r <= cfg.Runs; r++ {
		order := []System{Coordd, Etcd}
		if r%2 == 0 {
			order = []System{Etcd, Coordd}
		}
		for _, c := range cfg.Cases {
			for _, sys := range order {
				fmt.Fprintf(progress, "[%d/%d] run %d/%d  %-14s %d node(s)  %-6s ... ",
					len(records)+1, total, r, cfg.Runs, c.Workload.Name, c.Nodes, sys)
				start := time.Now()
				res, err := RunCase(ctx, cfg, c, sys)
				if ctx.Err() != nil { // interrupted: the run says nothing
					fmt.Fprintln(progress, "interrupted")
					return records, ctx.Err()
				}
				rec := Record{Workload: c.Workload.Name, Nodes: c.Nodes, System: sys, Run: r, Result: res, Wall: time.Since(start)}
				if err != nil {
					rec.Error = err.Error()
				}
				records = append(records, rec)
				fmt.Fprintf(progress, "%s (%.1fs)\n", brief(rec), rec.Wall.Seconds())
			}
		}
	}
	return records, nil
}

// workloadTimeout bounds one workload run: generous, since load-1m's load
// and restart take far longer than Duration.
func workloadTimeout(p Params) time.Duration {
	return 4*p.Duration + 2*p.RecoveryTimeout + 5*time.Minute
}

// RunCase starts a fresh cluster of sys, runs case c on it, adds the
// servers' CPU time and peak RSS to the result, and stops the cluster. A
// run in which a server exited on its own, or no operation succeeded,
// fails.
func RunCase(ctx context.Context, cfg Config, c Case, sys System) (*Result, error) {
	bin, err := cfg.Binaries.For(sys)
	if err != nil {
		return nil, err
	}
	cl, err := StartCluster(ctx, ClusterConfig{System: sys, Binary: bin, Nodes: c.Nodes, Dir: cfg.Dir})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	env := &Env{Cluster: cl, Params: cfg.Params}
	if err := env.BeginMeasure(); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, workloadTimeout(cfg.Params))
	res, err := c.Workload.Run(wctx, env)
	cancel()
	if crashed := cl.Crashed(); crashed != "" {
		return nil, fmt.Errorf("%w: %s", errCrashed, crashed)
	}
	switch {
	case err != nil:
		return nil, err
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case res.Ops == 0:
		return nil, fmt.Errorf("%w (%d errors; first: %s)", errNoOps, res.Errors, res.FirstError)
	}
	if env.end == nil {
		if err := env.EndMeasure(); err != nil {
			return nil, err
		}
	}
	final, err := cl.Usage()
	if err != nil {
		return nil, err
	}
	cpu := env.end.CPU - env.begin.CPU
	res.Metrics[MetricCPU] = cpu.Seconds()
	res.Metrics[MetricCPUPerOp] = float64(cpu.Microseconds()) / float64(res.Ops)
	res.Metrics[MetricPeakRSS] = float64(final.PeakRSS) / mib
	res.Metrics[MetricErrors] = float64(res.Errors)
	return res, nil
}

// brief renders a record on one line for the progress display.
func brief(rec Record) string {
	if rec.Error != "" {
		return "error: " + firstLine(rec.Error)
	}
	m := rec.Result.Metrics
	var b strings.Builder
	for _, name := range []string{MetricThroughput, MetricP50, MetricP99, MetricTimeToWrites, MetricRestart, MetricCPU, MetricPeakRSS} {
		if v, ok := m[name]; ok {
			fmt.Fprintf(&b, "%s %s  ", name, formatValue(v))
		}
	}
	if rec.Result.Errors > 0 {
		fmt.Fprintf(&b, "errors %d (%s)  ", rec.Result.Errors, firstLine(rec.Result.FirstError))
	}
	return strings.TrimSpace(b.String())
}

// firstLine returns s up to its first newline, at most 160 bytes of it.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
