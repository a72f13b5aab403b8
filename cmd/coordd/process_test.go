package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// These tests run real coordd processes, because kill -9 and fsync are what
// they are about.

var coorddBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coordd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	coorddBin = filepath.Join(dir, "coordd")
	build := exec.Command("go", "build", "-o", coorddBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coordd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string { return coordtest.FreeAddr(t) }

type proc struct {
	name, dataDir, client, peer, gossip string
	join                                []string
	extra                               []string // more flags
	n                                   int
	cmd                                 *exec.Cmd
	exited                              chan struct{} // closed when cmd ends
	log                                 *os.File
}

func (p *proc) args() []string {
	return append([]string{"--name", p.name, "--data-dir", p.dataDir,
		"--listen-client-urls", "http://" + p.client, "--listen-peer-urls", "http://" + p.peer,
		"--gossip-addr", p.gossip, "--bootstrap-expect", fmt.Sprint(p.n), "--join", strings.Join(p.join, ","),
	}, p.extra...)
}

// start runs the process and waits until it listens for clients. A port
// freeAddr found free may be taken by someone else before coordd binds it;
// a first start then moves to fresh ports, up to five times.
func (p *proc) start(t *testing.T) {
	t.Helper()
	first := p.cmd == nil && !fileExists(p.dataDir)
	for attempt := 0; ; attempt++ {
		before, _ := p.log.Seek(0, io.SeekCurrent)
		cmd := exec.Command(coorddBin, p.args()...)
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		p.cmd, p.exited = cmd, exited
		if p.waitListening() {
			return
		}
		data, _ := os.ReadFile(p.log.Name())
		out := string(data[min(int(before), len(data)):])
		if !first || attempt == 4 || !strings.Contains(out, "address already in use") {
			t.Fatalf("%s did not start: %s", p.name, tail(out, 10))
		}
		p.client, p.peer, p.gossip = freeAddr(t), freeAddr(t), freeAddr(t)
		p.cmd = nil
	}
}

// waitListening reports whether the client port answers within 10s; false
// if the process exited first.
func (p *proc) waitListening() bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", p.client, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (p *proc) kill9() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		p.cmd = nil
	}
}

// startProcs starts n coordd processes that bootstrap together.
func startProcs(t *testing.T, n int) []*proc {
	t.Helper()
	return startProcsWith(t, n, nil)
}

// startProcsWith starts n members, each with the extra flags.
func startProcsWith(t *testing.T, n int, extra []string) []*proc {
	t.Helper()
	dir := t.TempDir()
	procs := make([]*proc, n)
	for i := range procs {
		p := &proc{name: fmt.Sprintf("p%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("p%d", i)),
			client: freeAddr(t), peer: freeAddr(t), gossip: freeAddr(t), extra: extra}
		log, err := os.Create(filepath.Join(dir, p.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		p.log = log
		procs[i] = p
	}
	// Every member is told every gossip address, as an operator lists the
	// whole cluster in --join.
	var all []string
	for _, p := range procs {
		all = append(all, p.gossip)
	}
	for _, p := range procs {
		p.join, p.n = all, n
		p.start(t)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill9()
			p.log.Close()
		}
		if t.Failed() {
			for _, p := range procs {
				data, _ := os.ReadFile(p.log.Name())
				t.Logf("log of %s:\n%s", p.name, tail(string(data), 30))
			}
		}
	})
	return procs
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func client(t *testing.T, procs ...*proc) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, p := range procs {
		eps = append(eps, p.client)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitWrite retries a put until one succeeds or the deadline passes, and
// returns how long it took.
func waitWrite(t *testing.T, c *clientv3.Client, key string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = c.Put(ctx, key, "x")
		cancel()
		if err == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no write accepted within %v: %v", within, err)
	return 0
}

// leaderOf returns the process that leads, asking each one's status.
func leaderOf(t *testing.T, procs []*proc) *proc {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p.cmd == nil {
				continue
			}
			c := client(t, p)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.Status(ctx, p.client)
			cancel()
			c.Close()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader among the processes")
	return nil
}

func TestKill9LeaderWritesResume(t *testing.T) {
	procs := startProcs(t, 3)
	c := client(t, procs...)
	waitWrite(t, c, "warmup", 20*time.Second)
	leader := leaderOf(t, procs)
	leader.kill9()
	var rest []*proc
	for _, p := range procs {
		if p != leader {
			rest = append(rest, p)
		}
	}
	took := waitWrite(t, client(t, rest...), "after-kill", 3*time.Second)
	t.Logf("write accepted %v after kill -9 of the leader", took)
}

func TestKill9AllKeepsAcknowledgedWrites(t *testing.T) {
	procs := startProcs(t, 3)
	c := client(t, procs...)
	waitWrite(t, c, "warmup", 20*time.Second)

	// Writers stream puts; every acknowledged one is recorded. All three
	// processes are killed while the writes go on.
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				if ctx.Err() != nil {
					return
				}
				key := fmt.Sprintf("ack/%d/%06d", w, i)
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := c.Put(pctx, key, "v")
				cancel()
				if err == nil {
					mu.Lock()
					acked[key] = true
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range procs {
		p.kill9()
	}
	stop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}

	for _, p := range procs {
		p.start(t)
	}
	c2 := client(t, procs...)
	waitWrite(t, c2, "after-restart", 20*time.Second)
	gctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := c2.Get(gctx, "ack/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range g.Kvs {
		have[string(kv.Key)] = true
	}
	for k := range acked {
		if !have[k] {
			t.Fatalf("acknowledged write %s lost after kill -9 of every member (%d acknowledged, %d present)", k, len(acked), len(have))
		}
	}
	t.Logf("%d acknowledged writes, all present after kill -9 of all three", len(acked))
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	procs := startProcs(t, 3)
	c := client(t, procs...)
	waitWrite(t, c, "warmup", 20*time.Second)
	leader := leaderOf(t, procs)
	var follower *proc
	for _, p := range procs {
		if p != leader {
			follower = p
			break
		}
	}
	follower.kill9()
	for i := range 50 {
		waitWrite(t, c, fmt.Sprintf("while-down/%02d", i), 5*time.Second)
	}
	follower.start(t)
	fc := client(t, follower)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		g, err := fc.Get(ctx, "while-down/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		cancel()
		if err == nil && g.Count == 50 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted follower holds %v of 50 writes made while it was down (%v)", g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWipedMemberIsReAdded restarts a follower with an empty data dir: it
// must not bootstrap a cluster of its own; the leader takes its old self
// out and adds it anew, and it ends up with every write.
func TestWipedMemberIsReAdded(t *testing.T) {
	procs := startProcs(t, 3)
	c := client(t, procs...)
	waitWrite(t, c, "warmup", 20*time.Second)
	for i := range 30 {
		waitWrite(t, c, fmt.Sprintf("before/%02d", i), 5*time.Second)
	}
	leader := leaderOf(t, procs)
	var wiped *proc
	for _, p := range procs {
		if p != leader {
			wiped = p
			break
		}
	}
	wiped.kill9()
	if err := os.RemoveAll(wiped.dataDir); err != nil {
		t.Fatal(err)
	}
	wiped.start(t)
	wc := client(t, wiped)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		g, err := wc.Get(ctx, "before/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		cancel()
		if err == nil && g.Count == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wiped member holds %v of 30 keys (%v)", g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One cluster: a write through the wiped member is seen by the others,
	// and every member agrees on the revision.
	waitWrite(t, wc, "after-wipe", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var revs []int64
	for _, p := range procs {
		pc := client(t, p)
		g, err := pc.Get(ctx, "after-wipe")
		if err != nil || len(g.Kvs) != 1 {
			t.Fatalf("member %s: %v %v", p.name, g, err)
		}
		revs = append(revs, g.Header.Revision)
	}
	ml, err := wc.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list after the wipe: %v %v", ml, err)
	}
	if revs[0] != revs[1] || revs[1] != revs[2] {
		t.Fatalf("members disagree on the revision: %v", revs)
	}
	readded := false
	for _, p := range procs {
		data, _ := os.ReadFile(p.log.Name())
		readded = readded || strings.Contains(string(data), "member came back without its data")
	}
	if !readded {
		t.Fatal("no member noticed the wiped member's new incarnation")
	}
}

// TestSigtermLeaderHandsOver: SIGTERM to the leader hands leadership over
// and leaves the cluster; the process exits 0, writes go on, and the
// remaining members list two members.
func TestSigtermLeaderHandsOver(t *testing.T) {
	procs := startProcs(t, 3)
	c := client(t, procs...)
	waitWrite(t, c, "warmup", 20*time.Second)
	leader := leaderOf(t, procs)
	var rest []*proc
	for _, p := range procs {
		if p != leader {
			rest = append(rest, p)
		}
	}
	if err := leader.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-leader.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("leader did not exit within 15s of SIGTERM")
	}
	if code := leader.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	leader.cmd = nil
	rc := client(t, rest...)
	took := waitWrite(t, rc, "after-sigterm", 3*time.Second)
	t.Logf("write accepted %v after the leader's SIGTERM", took)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ml, err := rc.MemberList(ctx)
		cancel()
		if err == nil && len(ml.Members) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member that left is still listed: %v %v", ml, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
