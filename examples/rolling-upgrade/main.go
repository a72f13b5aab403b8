// Command rolling-upgrade simulates a fleet of 20 nodes, each with its own
// agent, upgraded from version 1 to 2 at most 3 at a time. One node's
// health check never passes: it fails, keeps its slot, and (budget 1) the
// rollout goes on around it. It shows live progress and a summary table.
//
//	go run ./examples/rolling-upgrade [--endpoints host:port] [--nodes 20] [--parallel 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/coordhq/coord/examples/internal/exampleenv"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// machine is a simulated node: its version and what happened to it.
type machine struct {
	mu             sync.Mutex
	version        string
	healthy        bool
	started, ended time.Time
}

func main() {
	nodes := flag.Int("nodes", 20, "simulated nodes")
	parallel := flag.Int("parallel", 3, "upgrades at once")
	flag.Parse()
	cli, done, err := exampleenv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer done()
	group := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	machines := map[string]*machine{}
	var wg sync.WaitGroup
	for i := range *nodes {
		id := fmt.Sprintf("node-%02d", i+1)
		m := &machine{version: "1", healthy: i != 6} // node-07 never gets healthy
		machines[id] = m
		a, err := worker.NewAgent(worker.AgentConfig{
			Client: cli, ID: id, Group: group, VersionCmd: "version", UpgradeCmd: "upgrade", HealthCmd: "health",
			HealthTimeout: time.Second, HealthInterval: 100 * time.Millisecond, PollInterval: 500 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Run: func(ctx context.Context, step, command string, env []string) (string, error) {
				return m.run(ctx, step, env)
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil {
				log.Printf("%s: %v", id, err)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	waitFor(ctx, func(ns []worker.Node) bool { return len(ns) == *nodes }, cli, group)
	start := time.Now()
	if _, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: group, Version: "2", MaxParallel: *parallel, FailureBudget: 1,
		HealthTimeout: worker.Duration(time.Second)}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("rollout of %d nodes to version 2, %d at a time; node-07's health check never passes\n", *nodes, *parallel)
	final := waitFor(ctx, func(ns []worker.Node) bool {
		done, failed, busy := 0, 0, 0
		for _, n := range ns {
			switch n.State {
			case worker.StateDone:
				done++
			case worker.StateFailed:
				failed++
			case worker.StateUpgrading:
				busy++
			}
		}
		bar := strings.Repeat("#", done*30/len(ns)) + strings.Repeat(".", 30-done*30/len(ns))
		fmt.Printf("\r[%s] %2d done, %d upgrading, %d failed, %.1fs ", bar, done, busy, failed, time.Since(start).Seconds())
		return done+failed == len(ns)
	}, cli, group)
	fmt.Printf("\n\n")

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSTATE\tUPGRADE STARTED\tTOOK")
	overlap := 0
	for _, n := range final {
		m := machines[n.ID]
		m.mu.Lock()
		took := "-"
		if !m.ended.IsZero() {
			took = m.ended.Sub(m.started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t+%.1fs\t%s\n", n.ID, n.Version, n.State, m.started.Sub(start).Seconds(), took)
		m.mu.Unlock()
	}
	tw.Flush()
	overlap = peakOverlap(machines)
	fmt.Printf("\nat most %d upgrades at once (limit %d); took %v\n", overlap, *parallel, time.Since(start).Round(time.Millisecond))
}

// run is the simulated machine's side of the agent's commands.
func (m *machine) run(ctx context.Context, step string, env []string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch step {
	case "version":
		return m.version, nil
	case worker.StepUpgrade:
		m.started = time.Now()
		m.mu.Unlock()
		select { // the upgrade's work
		case <-time.After(time.Duration(200+rand.IntN(300)) * time.Millisecond):
		case <-ctx.Done():
		}
		m.mu.Lock()
		m.ended = time.Now()
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "COORD_TARGET_VERSION="); ok {
				m.version = v
			}
		}
	case worker.StepHealth:
		if !m.healthy {
			return "", errors.New("service did not come up")
		}
	}
	return "", nil
}

// waitFor polls the group's nodes until ok says so.
func waitFor(ctx context.Context, ok func([]worker.Node) bool, cli *clientv3.Client, group string) []worker.Node {
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ns, err := worker.ListNodes(qctx, cli, group)
		cancel()
		if err == nil && len(ns) > 0 && ok(ns) {
			return ns
		}
		select {
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// peakOverlap is the most upgrade commands that ran at one moment.
func peakOverlap(machines map[string]*machine) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, m := range machines {
		m.mu.Lock()
		if !m.started.IsZero() && !m.ended.IsZero() {
			edges = append(edges, edge{m.started, 1}, edge{m.ended, -1})
		}
		m.mu.Unlock()
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}
