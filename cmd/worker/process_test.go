package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

var workerBin, coordctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	coordctlBin = filepath.Join(dir, "coordctl")
	for _, b := range [][]string{{"-o", workerBin, "."}, {"-o", coordctlBin, "../coordctl"}} {
		build := exec.Command("go", append([]string{"build"}, b...)...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		defer func() {
			if err := goleak.Find(goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")); err != nil && code == 0 {
				fmt.Fprintln(os.Stderr, err)
				code = 1
			}
		}()
		code = m.Run()
	}()
	os.Exit(code)
}

// node is one simulated machine: a directory with its version, its health,
// and a log of its upgrades, and a worker process driving it.
type node struct {
	id, dir string
	cmd     *exec.Cmd
	done    chan struct{}
}

func (n *node) start(t *testing.T, endpoint string) {
	t.Helper()
	d := n.dir
	cmd := exec.Command(workerBin, "--endpoints", endpoint, "--id", n.id, "--group", "fleet", "--ttl", "2",
		"--poll-interval", "300ms", "--health-interval", "100ms", "--health-timeout", "1s",
		"--version-cmd", "cat "+d+"/version",
		"--drain-cmd", "echo drain >> "+d+"/steps",
		"--upgrade-cmd", `echo "start $(date +%s%N)" >> `+d+`/log; sleep 0.7; echo "$COORD_TARGET_VERSION" > `+d+`/version; echo "end $(date +%s%N)" >> `+d+`/log`,
		"--health-cmd", "test -f "+d+"/healthy",
		"--undrain-cmd", "echo undrain >> "+d+"/steps")
	logf, err := os.OpenFile(filepath.Join(d, "worker.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill -9 takes its commands too, as a crash would
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(n.done) }()
}

func (n *node) kill9() {
	if n.cmd != nil {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
		n.cmd = nil
	}
}

// runs reads a node's upgrade log: [start, end) per upgrade run; a run
// killed before its end lasts until killedAt (or forever if zero).
func (n *node) runs(t *testing.T) (starts, ends []int64) {
	b, err := os.ReadFile(filepath.Join(n.dir, "log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		if f[0] == "start" {
			starts = append(starts, ns)
		} else {
			ends = append(ends, ns)
		}
	}
	return starts, ends
}

func listNodes(t *testing.T, cli *clientv3.Client) []worker.Node {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns, err := worker.ListNodes(ctx, cli, "fleet")
	if err != nil {
		return nil
	}
	return ns
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRollingUpgradeWithCrashes: a coordd and 8 worker processes whose
// upgrade commands record their start and end; max parallel 2; two workers
// are killed with SIGKILL (with their commands) mid-upgrade and restarted.
// Every node ends on the new version, no more than 2 upgrades ever
// overlap, every upgrade completed exactly once per node; then a rollout
// whose health checks fail halts after the budget and nobody else starts.
func TestRollingUpgradeWithCrashes(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	root := t.TempDir()
	nodes := make([]*node, 8)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("n%d", i), dir: filepath.Join(root, fmt.Sprintf("n%d", i))}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(n.dir, "version"), []byte("1\n"), 0o644)
		os.WriteFile(filepath.Join(n.dir, "healthy"), nil, 0o644)
		n.start(t, m.Endpoint())
		nodes[i] = n
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.kill9()
		}
		if t.Failed() {
			for _, n := range nodes {
				b, _ := os.ReadFile(filepath.Join(n.dir, "worker.log"))
				t.Logf("%s:\n%s", n.id, tailLines(string(b), 15))
			}
		}
	})
	waitFor(t, "8 nodes registered", 20*time.Second, func() bool { return len(listNodes(t, cli)) == 8 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: "fleet", Version: "2", MaxParallel: 2}); err != nil {
		t.Fatal(err)
	}
	// Kill two nodes in the middle of their upgrade command, then restart them.
	killed := map[string]bool{}
	for len(killed) < 2 {
		var victim *node
		waitFor(t, "a node mid-upgrade", 30*time.Second, func() bool {
			// Mid-upgrade: its upgrade command has started and not ended.
			for _, n := range nodes {
				if starts, ends := n.runs(t); !killed[n.id] && len(starts) > len(ends) {
					victim = n
					return true
				}
			}
			return false
		})
		victim.kill9()
		killed[victim.id] = true
		t.Logf("killed %s mid-upgrade", victim.id)
		victim.start(t, m.Endpoint())
	}
	waitFor(t, "every node on version 2", 90*time.Second, func() bool {
		ns := listNodes(t, cli)
		if len(ns) != 8 {
			return false
		}
		for _, n := range ns {
			if n.Version != "2" || n.State != worker.StateDone {
				return false
			}
		}
		return true
	})

	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, n := range nodes {
		starts, ends := n.runs(t)
		if len(ends) != 1 {
			t.Errorf("%s completed its upgrade %d times, want once", n.id, len(ends))
		}
		if killed[n.id] && len(starts) != 2 {
			t.Errorf("%s was killed mid-upgrade: %d upgrade starts, want 2 (the killed one and the re-run)", n.id, len(starts))
		}
		// A killed run ends when the next run of that node starts, at the latest.
		for i, s := range starts {
			end := int64(1<<62 - 1)
			if i == len(starts)-1 && len(ends) > 0 {
				end = ends[len(ends)-1]
			} else if i < len(starts)-1 {
				end = starts[i+1]
			}
			edges = append(edges, edge{s, +1}, edge{end, -1})
		}
		if b, _ := os.ReadFile(filepath.Join(n.dir, "steps")); strings.Count(string(b), "drain\n") != 1+strings.Count(string(b), "undrain\n") {
			t.Errorf("%s steps: %q: drain ran more than once", n.id, b)
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at == edges[j].at {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at < edges[j].at
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	if peak > 2 {
		t.Fatalf("%d upgrades overlapped, max parallel 2", peak)
	}
	t.Logf("every node on version 2; at most %d upgrades at once", peak)

	// Now every health check fails: the first failure (budget 0) halts the
	// rollout and the others, told so, do not start.
	before := map[string]int{}
	for _, n := range nodes {
		os.Remove(filepath.Join(n.dir, "healthy"))
		starts, _ := n.runs(t)
		before[n.id] = len(starts)
	}
	if _, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: "fleet", Version: "3", MaxParallel: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rollout halted", 60*time.Second, func() bool {
		r, err := worker.GetRollout(ctx, cli, "fleet")
		return err == nil && r.State == worker.RolloutHalted
	})
	waitFor(t, "the others waiting on the halt", 30*time.Second, func() bool {
		waiting := 0
		for _, n := range listNodes(t, cli) {
			if n.State == worker.StateWaiting && n.Step == "rollout "+worker.RolloutHalted {
				waiting++
			}
		}
		return waiting >= 6
	})
	started := 0
	for _, n := range nodes {
		if starts, _ := n.runs(t); len(starts) > before[n.id] {
			started++
		}
	}
	if started > 2 {
		t.Fatalf("%d nodes started the failing rollout, want at most 2 (max parallel) before the halt", started)
	}
}

func tailLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "\n")
}

// TestFleetLockSubcommand: `worker fleetlock` serves FleetLock from any
// etcd v3 endpoint, with the policy flags.
func TestFleetLockSubcommand(t *testing.T) {
	m := coordtest.StartSingle(t)
	addr := coordtest.FreeAddr(t)
	cmd := exec.Command(workerBin, "fleetlock", "--listen", "http://"+addr+"/fl", "--endpoints", m.Endpoint(),
		"--groups", "default=1", "--deadline", "1h", "--failure-budget", "1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	post := func(id string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/fl/v1/pre-reboot", strings.NewReader(`{"client_params":{"id":"`+id+`","group":"default"}}`))
		req.Header.Set("fleet-lock-protocol", "true")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "fleetlock answering", 20*time.Second, func() bool { return post("a") == http.StatusOK })
	if code := post("b"); code != http.StatusLocked {
		t.Fatalf("b with the one slot taken: %d, want 423", code)
	}
}
