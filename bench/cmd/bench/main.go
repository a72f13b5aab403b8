// Command bench runs coordd and etcd side by side under the same workloads
// and prints a markdown table comparing them; see package
// github.com/coordhq/coord/bench/internal/harness for what it measures.
// From the bench directory:
//
//	go run ./cmd/bench --quick
//	go run ./cmd/bench --only=put-256,leader-kill --nodes=3 --json results.json
//
// Progress goes to stderr, the table to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coordhq/coord/bench/internal/harness"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "short runs and 100k keys: about 3 minutes on 2 cores")
	runs := fs.Int("runs", 3, "runs of each workload on each system; the report shows medians")
	duration := fs.Duration("duration", 0, "measured phase of each timed workload (default 10s, 600ms with --quick)")
	only := fs.String("only", "", "comma-separated workloads to run (default all): "+strings.Join(names(), ","))
	nodes := fs.String("nodes", "1,3", "comma-separated cluster sizes")
	jsonPath := fs.String("json", "", "write the raw results of every run to this file")
	coorddBin := fs.String("coordd-bin", "", "coordd executable to use instead of building one")
	etcdBin := fs.String("etcd-bin", "", "etcd executable to use instead of building one")
	dir := fs.String("dir", "", "where the clusters' temporary data directories go (default $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	params := harness.DefaultParams()
	if *quick {
		params = harness.QuickParams()
	}
	if *duration > 0 {
		params.Duration = *duration
	}
	if *runs < 1 {
		return fmt.Errorf("--runs must be at least 1")
	}
	sizes, err := parseInts(*nodes)
	if err != nil {
		return fmt.Errorf("--nodes: %w", err)
	}
	cases, err := harness.Plan(splitList(*only), sizes, *quick)
	if err != nil {
		return err
	}

	// The first Ctrl-C ends the run cleanly (servers killed, directories
	// removed); a second one kills the harness, and the kernel its servers.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	// Other work on the machine skews the numbers: the report says how busy
	// it was.
	loadAtStart := loadAverage()
	bins, cleanup, err := binaries(ctx, *coorddBin, *etcdBin)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(os.Stderr, "servers ready in %.1fs; %d cases × 2 systems × %d runs\n", time.Since(start).Seconds(), len(cases), *runs)

	records, runErr := harness.Run(ctx, harness.Config{
		Binaries: bins, Dir: *dir, Runs: *runs, Cases: cases, Params: params, Progress: os.Stderr,
	})
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, records); err != nil {
			return err
		}
	}
	fmt.Printf("coordd vs etcd %s: median of %d runs, fresh cluster per run; %v per timed workload, %d keys in load-1m; %d CPUs, %s; load average %s before the run.\n\n",
		etcdVersion(), *runs, params.Duration, params.LoadKeys, runtime.NumCPU(), runtime.Version(), loadAtStart)
	if err := harness.Summarize(cases, records).WriteMarkdown(os.Stdout); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "total %.1fs\n", time.Since(start).Seconds())
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted; the table shows the runs that completed")
	}
	return runErr
}

// binaries returns the servers to run: those given, and the others built
// into a temporary directory that cleanup removes.
func binaries(ctx context.Context, coordd, etcd string) (harness.Binaries, func(), error) {
	if coordd != "" && etcd != "" {
		return harness.Binaries{Coordd: coordd, Etcd: etcd}, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "bench-bin-")
	if err != nil {
		return harness.Binaries{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	fmt.Fprintln(os.Stderr, "building coordd and etcd ...")
	bins, err := harness.Build(ctx, dir, os.Stderr)
	if err != nil {
		cleanup()
		return harness.Binaries{}, nil, err
	}
	if coordd != "" {
		bins.Coordd = coordd
	}
	if etcd != "" {
		bins.Etcd = etcd
	}
	return bins, cleanup, nil
}

func writeJSON(path string, records []harness.Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := harness.WriteJSON(f, records); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// etcdVersion returns the version of the etcd module the harness is built
// with, which is the etcd it builds.
func etcdVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "go.etcd.io/etcd/client/v3" {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}

// loadAverage returns the 1-minute load average of the machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func names() []string {
	var out []string
	for _, w := range harness.Workloads() {
		out = append(out, w.Name)
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cluster size")
	}
	return out, nil
}
