package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fleet simulates machines: each node's version, and what its commands did.
type fleet struct {
	mu        sync.Mutex
	version   map[string]string
	runs      map[string]int // node/step -> how often it ran to the end
	upgrading int            // upgrades under way now
	peak      int
	unhealthy map[string]bool
	// hold, if set, blocks node's upgrade command until the channel closes
	// (or the agent is stopped, which is how a crash looks from here).
	hold map[string]chan struct{}
}

func newFleet() *fleet {
	return &fleet{version: map[string]string{}, runs: map[string]int{}, unhealthy: map[string]bool{}, hold: map[string]chan struct{}{}}
}

func (f *fleet) runner(id string) func(ctx context.Context, step, command string, env []string) (string, error) {
	return func(ctx context.Context, step, command string, env []string) (string, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch step {
		case "version":
			return f.version[id] + "\n", nil
		case worker.StepUpgrade:
			f.upgrading++
			f.peak = max(f.peak, f.upgrading)
			hold := f.hold[id]
			f.mu.Unlock()
			var err error
			select {
			case <-hold: // nil: no hold
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(20 * time.Millisecond):
				if hold != nil {
					select {
					case <-hold:
					case <-ctx.Done():
						err = ctx.Err()
					}
				}
			}
			f.mu.Lock()
			f.upgrading--
			if err != nil {
				return "", err
			}
			var target string
			for _, e := range env {
				if v, ok := cutPrefix(e, "COORD_TARGET_VERSION="); ok {
					target = v
				}
			}
			f.version[id] = target
		case worker.StepHealth:
			if f.unhealthy[id] {
				return "", errors.New("unhealthy")
			}
		}
		f.runs[id+"/"+step]++
		return "", nil
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// startAgent runs an agent for node id until the returned stop is called.
func startAgent(t *testing.T, cli *clientv3.Client, f *fleet, id string) (stop func()) {
	t.Helper()
	a, err := worker.NewAgent(worker.AgentConfig{Client: cli, ID: id, Group: "web", TTL: 5,
		VersionCmd: "v", DrainCmd: "d", UpgradeCmd: "u", HealthCmd: "h", UndrainCmd: "n",
		HealthInterval: 10 * time.Millisecond, PollInterval: 200 * time.Millisecond, Run: f.runner(id)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent %s: %v", id, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitNodes(t *testing.T, cli *clientv3.Client, what string, ok func([]worker.Node) bool) []worker.Node {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nodes, err := worker.ListNodes(ctx, cli, "web")
		cancel()
		if err == nil && ok(nodes) {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s: %+v (%v)", what, nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allIn(state, version string, n int) func([]worker.Node) bool {
	return func(nodes []worker.Node) bool {
		if len(nodes) != n {
			return false
		}
		for _, nd := range nodes {
			if nd.State != state || nd.Version != version {
				return false
			}
		}
		return true
	}
}

func TestAgentsRollOut(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	f := newFleet()
	const n = 6
	for i := range n {
		id := fmt.Sprintf("n%d", i)
		f.version[id] = "1"
		startAgent(t, cli, f, id)
	}
	waitNodes(t, cli, "all registered idle", func(nodes []worker.Node) bool { return len(nodes) == n })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: "web", Version: "2", MaxParallel: 2}); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, cli, "all on version 2", allIn(worker.StateDone, "2", n))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peak > 2 {
		t.Fatalf("%d upgrades at once, max parallel 2", f.peak)
	}
	for i := range n {
		for _, step := range []string{"drain", "upgrade", "health", "undrain"} {
			if c := f.runs[fmt.Sprintf("n%d/%s", i, step)]; c != 1 {
				t.Errorf("n%d ran %s %d times, want once", i, step, c)
			}
		}
	}
}

// An agent stopped mid-upgrade (as a crash would stop it) resumes at the
// interrupted step when it starts again: drain does not run twice.
func TestAgentResumesAfterCrash(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	f := newFleet()
	f.version["a"] = "1"
	f.hold["a"] = make(chan struct{})
	stop := startAgent(t, cli, f, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := worker.StartRollout(ctx, cli, worker.Rollout{Group: "web", Version: "2", MaxParallel: 1}); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, cli, "a upgrading", func(nodes []worker.Node) bool {
		return len(nodes) == 1 && nodes[0].State == worker.StateUpgrading && nodes[0].Step == worker.StepUpgrade
	})
	stop() // crash in the middle of the upgrade command
	close(f.hold["a"])
	startAgent(t, cli, f, "a")
	waitNodes(t, cli, "a on version 2", allIn(worker.StateDone, "2", 1))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs["a/drain"] != 1 || f.runs["a/upgrade"] != 1 || f.runs["a/undrain"] != 1 {
		t.Fatalf("runs after the crash: %v; want drain, upgrade (the re-run), undrain once each", f.runs)
	}
}

// A node whose health check fails keeps its slot and, past the budget,
// halts the rollout for everyone.
func TestAgentFailureHaltsRollout(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	f := newFleet()
	for _, id := range []string{"bad", "x", "y"} {
		f.version[id] = "1"
	}
	f.unhealthy["bad"] = true
	// Only "bad" runs first, so that its failure comes before the others start.
	startAgent(t, cli, f, "bad")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := worker.Rollout{Group: "web", Version: "2", MaxParallel: 2, HealthTimeout: worker.Duration(100 * time.Millisecond)}
	if _, err := worker.StartRollout(ctx, cli, r); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, cli, "bad failed", func(nodes []worker.Node) bool { return len(nodes) == 1 && nodes[0].State == worker.StateFailed })
	got, err := worker.GetRollout(ctx, cli, "web")
	if err != nil || got.State != worker.RolloutHalted {
		t.Fatalf("rollout after a failure with budget 0: %+v %v, want halted", got, err)
	}
	startAgent(t, cli, f, "x")
	startAgent(t, cli, f, "y")
	nodes := waitNodes(t, cli, "x and y waiting", func(nodes []worker.Node) bool {
		w := 0
		for _, nd := range nodes {
			if nd.State == worker.StateWaiting {
				w++
			}
		}
		return w == 2
	})
	for _, nd := range nodes {
		if nd.ID != "bad" && nd.Version != "1" {
			t.Fatalf("%s upgraded while the rollout was halted", nd.ID)
		}
	}
	// The operator fixes the node and resumes: everyone finishes.
	f.mu.Lock()
	f.unhealthy["bad"] = false
	f.mu.Unlock()
	if _, err := worker.ResumeRollout(ctx, cli, "web"); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, cli, "all on version 2 after resume", allIn(worker.StateDone, "2", 3))
}
