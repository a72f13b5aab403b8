package main

import (
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/worker"
)

func TestRolloutAndFleetLockCommands(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	run := func(args ...string) (string, error) { return runCtl(t, 20*time.Second, ep, args...) }
	if _, err := run("rollout", "status", "--group", "web"); err == nil {
		t.Fatal("status of a group without a rollout: no error")
	}
	out, err := run("rollout", "start", "--group", "web", "--version", "2", "--max-parallel", "2", "--failure-budget", "1", "--window", "0 2 * * *", "--window-duration", "2h")
	if err != nil || !strings.Contains(out, "rollout of web to 2 started: 2 at a time, failure budget 1") {
		t.Fatalf("start: %q %v", out, err)
	}
	for _, step := range []struct{ cmd, want string }{{"pause", "paused"}, {"resume", "running"}, {"abort", "aborted"}} {
		if out, err := run("rollout", step.cmd, "--group", "web"); err != nil || !strings.Contains(out, "is "+step.want) {
			t.Fatalf("%s: %q %v", step.cmd, out, err)
		}
	}
	out, err = run("rollout", "status", "--group", "web")
	if err != nil || !strings.Contains(out, "rollout of web to 2: aborted") || !strings.Contains(out, "0/0 done") {
		t.Fatalf("status: %q %v", out, err)
	}
	if out, err := run("nodes"); err != nil || !strings.HasPrefix(out, "GROUP") {
		t.Fatalf("nodes: %q %v", out, err)
	}
	for _, bad := range [][]string{{"rollout"}, {"rollout", "start", "--group", "web"}, {"rollout", "start", "--version", "3", "--max-parallel", "0"},
		{"rollout", "start", "--version", "3", "--window", "sometimes", "--window-duration", "1h"}, {"rollout", "jump"}, {"fleetlock", "pause"}, {"fleetlock", "stop", "g"}, {"fleetlock", "pause", "a/b"}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
	if _, err := run("fleetlock", "pause", "workers"); err != nil {
		t.Fatal(err)
	}
	cli := m.Client()
	defer cli.Close()
	if resp, err := cli.Get(ctxFor(t), worker.FleetLockPausePrefix+"workers"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("pause key: %v %v", resp, err)
	}
	if _, err := run("fleetlock", "resume", "workers"); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctxFor(t), worker.FleetLockPausePrefix+"workers"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("pause key after resume: %v %v", resp, err)
	}
}
