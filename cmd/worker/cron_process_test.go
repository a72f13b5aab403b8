package main

import (
	"context"
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
	"github.com/coordhq/coord/election"
	"github.com/coordhq/coord/scheduler"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// proc is a worker process in its own process group.
type proc struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, dir, id string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(workerBin, append([]string{"--id", id, "--ttl", "2", "--log-level", "debug"}, args...)...)
	logf, err := os.Create(filepath.Join(dir, id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{id: id, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p
}

func (p *proc) kill9() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// TestCronWithFailures: 2 scheduler candidates and 3 job workers (real
// processes) on a coordd; a job every second, max-concurrent 1, forbid.
// The scheduler leader and a worker in the middle of a run are killed with
// SIGKILL. Every tick produced exactly one run, no two runs overlapped,
// and the killed run was run again as attempt 2 and resumed from the
// checkpoint its first attempt saved.
func TestCronWithFailures(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "runs.log")
	ctl := coordctlBin + " --endpoints " + m.Endpoint()
	// Five steps of 0.1 s, each checkpointed; a re-run starts after the
	// last saved step.
	script := `log=` + logPath + `; echo "start $COORD_RUN $COORD_ATTEMPT $(date +%s%N)" >> $log
step=$(` + ctl + ` checkpoint load run-$COORD_RUN 2>/dev/null || echo 0)
echo "resume $COORD_RUN $COORD_ATTEMPT $step" >> $log
while [ "$step" -lt 5 ]; do sleep 0.1; step=$((step+1)); echo $step | ` + ctl + ` checkpoint save run-$COORD_RUN - >/dev/null || exit 1; done
echo "end $COORD_RUN $COORD_ATTEMPT $(date +%s%N)" >> $log`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := scheduler.CreateJob(ctx, cli, scheduler.Job{Name: "tick", Schedule: "@every 1s", Command: []string{"sh", "-c", script},
		Policy: scheduler.PolicyForbid, StartingDeadline: scheduler.Duration(time.Hour), Retries: 0}); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proc{}
	for _, id := range []string{"s1", "s2"} {
		procs[id] = startProc(t, dir, id, "--endpoints", m.Endpoint(), "--scheduler")
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		procs[id] = startProc(t, dir, id, "--endpoints", m.Endpoint(), "--run-jobs", "--slots", "2")
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill9()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("runs.log:\n%s", b)
		}
	})

	runs := func() []scheduler.Run {
		rs, _ := scheduler.ListRuns(ctx, cli, "tick")
		return rs
	}
	waitFor(t, "3 runs finished", 30*time.Second, func() bool { return count(runs(), scheduler.RunSucceeded) >= 3 })

	// Kill a worker in the middle of a run, once it has saved a step.
	var victim scheduler.Run
	waitFor(t, "a run under way with a saved step", 30*time.Second, func() bool {
		for _, r := range runs() {
			if r.State == scheduler.RunRunning {
				resp, _ := cli.Get(ctx, "coord/checkpoint/run-"+strconv.FormatInt(r.Scheduled.UnixNano(), 10)+"/m/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
				if resp != nil && len(resp.Kvs) > 0 {
					victim = r
					return true
				}
			}
		}
		return false
	})
	procs[victim.Worker].kill9()
	killedAt := time.Now().UnixNano()
	t.Logf("killed worker %s during the run of %v", victim.Worker, victim.Scheduled)
	// And the scheduler leader.
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	leader, err := election.CurrentLeader(lctx, cli, scheduler.ElectionName)
	lcancel()
	if err != nil {
		t.Fatal(err)
	}
	procs[leader.Value].kill9()
	t.Logf("killed scheduler leader %s", leader.Value)

	waitFor(t, "the killed run re-run to the end", 60*time.Second, func() bool {
		for _, r := range runs() {
			if r.Scheduled.Equal(victim.Scheduled) && r.State == scheduler.RunSucceeded {
				return r.Attempt == 2
			}
		}
		return false
	})
	waitFor(t, "more runs after the failover", 30*time.Second, func() bool { return count(runs(), scheduler.RunSucceeded) >= 8 })

	// One run per tick: consecutive seconds, no tick doubled or lost.
	rs := runs()
	for i := 1; i < len(rs); i++ {
		if d := rs[i].Scheduled.Sub(rs[i-1].Scheduled); d != time.Second {
			t.Fatalf("runs at %v and %v: a tick doubled or lost", rs[i-1].Scheduled, rs[i].Scheduled)
		}
	}
	// No overlap, and the re-run resumed after the step its first attempt saved.
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ start, end int64 }
	spans := map[string]*span{}
	vid := strconv.FormatInt(victim.Scheduled.UnixNano(), 10)
	resumedFrom := -1
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		key := f[1] + "/" + f[2]
		switch f[0] {
		case "start":
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			spans[key] = &span{start: ns, end: 1<<62 - 1}
		case "end":
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			if s := spans[key]; s != nil {
				s.end = ns
			}
		case "resume":
			if f[1] == vid && f[2] == "2" {
				resumedFrom, _ = strconv.Atoi(f[3])
			}
		}
	}
	if resumedFrom < 1 {
		t.Fatalf("the re-run of %s resumed from step %d, want the step its first attempt saved (>= 1)", vid, resumedFrom)
	}
	// The killed attempt ended when its worker was killed.
	if s := spans[vid+"/1"]; s != nil && s.end == 1<<62-1 {
		s.end = killedAt
	}
	var all []span
	for _, s := range spans {
		all = append(all, *s)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].start < all[j].start })
	for i := 1; i < len(all); i++ {
		if all[i].start < all[i-1].end {
			t.Fatalf("two runs overlapped: %v and %v", all[i-1], all[i])
		}
	}
	t.Logf("%d runs, one per tick; the killed run resumed at step %d", len(rs), resumedFrom)
}

func count(rs []scheduler.Run, state string) int {
	n := 0
	for _, r := range rs {
		if r.State == state {
			n++
		}
	}
	return n
}
