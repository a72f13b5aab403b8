package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// System names a server under test.
type System string

// The systems compared.
const (
	Coordd System = "coordd"
	Etcd   System = "etcd"
)

// Binaries are the paths of the server executables.
type Binaries struct {
	Coordd, Etcd string
}

// For returns the executable of s.
func (b Binaries) For(s System) (string, error) {
	switch s {
	case Coordd:
		return b.Coordd, nil
	case Etcd:
		return b.Etcd, nil
	}
	return "", fmt.Errorf("harness: unknown system %q", s)
}

// ClusterConfig says what StartCluster starts.
type ClusterConfig struct {
	System System
	// Binary is the server executable.
	Binary string
	// Nodes is the number of members.
	Nodes int
	// Dir is where the cluster's temporary directory goes (default
	// os.TempDir()). The directory is removed by Close.
	Dir string
	// ReadyTimeout bounds the wait until every member accepts writes
	// (default 60 s).
	ReadyTimeout time.Duration
}

// Raft settings given to both systems.
const (
	heartbeatMillis = 100
	electionMillis  = 1000
	snapshotCount   = 10000
	etcdQuotaBytes  = 8 << 30
)

// Cluster is a cluster of server processes on 127.0.0.1. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg     ClusterConfig
	dir     string
	members []*member

	mu sync.Mutex // guards the proc field of members, and dead
	// dead is the resource use of the processes that have exited.
	dead Usage
}

// member is one server of the cluster, across restarts.
type member struct {
	name    string
	client  string // host:port the client URL listens on
	args    []string
	logPath string
	proc    *process // nil while stopped; guarded by Cluster.mu
}

// StartCluster starts a fresh cluster in a new temporary directory and
// waits until every member accepts writes. If a member dies on start-up
// (a port taken meanwhile), it tries again on fresh ports, three times in all.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("harness: cluster of %d nodes", cfg.Nodes)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	for attempt := 1; ; attempt++ {
		c, err := startOnce(ctx, cfg)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errExitedEarly) || attempt == 3 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func startOnce(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "bench-"+string(cfg.System)+"-")
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	c := &Cluster{cfg: cfg, dir: dir}
	if err := c.layout(); err != nil {
		c.Close()
		return nil, err
	}
	for i := range c.members {
		if err := c.start(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// layout picks the members' ports and command lines.
func (c *Cluster) layout() error {
	n := c.cfg.Nodes
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	client := func(i int) string { return loopback(ports[3*i]) }
	peer := func(i int) string { return loopback(ports[3*i+1]) }
	gossip := func(i int) string { return loopback(ports[3*i+2]) }
	var join, initial []string
	for i := range n {
		join = append(join, gossip(i))
		initial = append(initial, fmt.Sprintf("p%d=http://%s", i, peer(i)))
	}
	for i := range n {
		m := &member{
			name:    fmt.Sprintf("p%d", i),
			client:  client(i),
			logPath: filepath.Join(c.dir, fmt.Sprintf("p%d.log", i)),
		}
		dataDir := filepath.Join(c.dir, m.name)
		switch c.cfg.System {
		case Coordd:
			m.args = []string{
				"--name", m.name, "--data-dir", dataDir,
				"--listen-client-urls", "http://" + client(i),
				"--listen-peer-urls", "http://" + peer(i),
				"--gossip-addr", gossip(i),
				"--bootstrap-expect", strconv.Itoa(n),
				"--join", strings.Join(join, ","),
				"--log-level", "warn",
			}
		case Etcd:
			m.args = []string{
				"--name", m.name, "--data-dir", dataDir,
				"--listen-client-urls", "http://" + client(i),
				"--advertise-client-urls", "http://" + client(i),
				"--listen-peer-urls", "http://" + peer(i),
				"--initial-advertise-peer-urls", "http://" + peer(i),
				"--initial-cluster", strings.Join(initial, ","),
				"--initial-cluster-state", "new",
				"--heartbeat-interval", strconv.Itoa(heartbeatMillis),
				"--election-timeout", strconv.Itoa(electionMillis),
				"--snapshot-count", strconv.Itoa(snapshotCount),
				"--log-level", "warn",
				"--quota-backend-bytes", strconv.Itoa(etcdQuotaBytes),
			}
		default:
			return fmt.Errorf("harness: unknown system %q", c.cfg.System)
		}
		c.members = append(c.members, m)
	}
	return nil
}

// start starts member i's process.
func (c *Cluster) start(i int) error {
	m := c.members[i]
	p, err := startProcess(c.cfg.Binary, m.args, m.logPath)
	if err != nil {
		return err
	}
	c.mu.Lock()
	m.proc = p
	c.mu.Unlock()
	return nil
}

// waitReady waits until a put through each member's endpoint succeeds.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for i := range c.members {
		if err := c.waitWritable(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// waitWritable waits until member i accepts a put, or its process exits.
func (c *Cluster) waitWritable(ctx context.Context, i int) error {
	m := c.members[i]
	p := c.proc(i)
	if p == nil {
		return fmt.Errorf("harness: %s %s is not running", c.cfg.System, m.name)
	}
	// Dial TCP first: a gRPC client that finds the port closed backs off
	// for a second before it tries again.
	for {
		conn, err := net.DialTimeout("tcp", m.client, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if err := c.notReady(ctx, p, m, err); err != nil {
			return err
		}
	}
	cli, err := newClient([]string{"http://" + m.client})
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, perr := cli.Put(pctx, "bench/ready", m.name)
		cancel()
		if perr == nil {
			return nil
		}
		if err := c.notReady(ctx, p, m, perr); err != nil {
			return err
		}
	}
}

// notReady waits a little before the next readiness probe, and says why
// to give up: the process exited, or ctx ended.
func (c *Cluster) notReady(ctx context.Context, p *process, m *member, last error) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%w: %s %s: %s\n%s", errExitedEarly, c.cfg.System, m.name, p.cmd.ProcessState, logTail(m.logPath))
	case <-ctx.Done():
		return fmt.Errorf("harness: %s %s not ready: %v (last: %v)\n%s", c.cfg.System, m.name, ctx.Err(), last, logTail(m.logPath))
	case <-time.After(10 * time.Millisecond):
		return nil
	}
}

func (c *Cluster) proc(i int) *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].proc
}

// System returns the system the cluster runs.
func (c *Cluster) System() System { return c.cfg.System }

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Endpoints returns the client URLs of all members.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i := range c.members {
		eps[i] = c.Endpoint(i)
	}
	return eps
}

// Endpoint returns the client URL of member i.
func (c *Cluster) Endpoint(i int) string { return "http://" + c.members[i].client }

// Kill sends SIGKILL to member i and waits until it is gone.
func (c *Cluster) Kill(i int) error {
	p := c.proc(i)
	if p == nil {
		return fmt.Errorf("harness: %s %s is not running", c.cfg.System, c.members[i].name)
	}
	// The peak RSS must be read before the kill: the maxrss of a reaped
	// child counts the harness's own RSS at fork time.
	peak, _ := readStatusKB(p.cmd.Process.Pid, "VmHWM")
	p.kill()
	u := p.finalUsage()
	if peak > 0 {
		u.PeakRSS = peak * 1024
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead.add(u)
	c.members[i].proc = nil
	return nil
}

// Restart starts the stopped member i again, on its data directory, and
// returns when its process started; it does not wait for it to serve.
func (c *Cluster) Restart(i int) (time.Time, error) {
	if c.proc(i) != nil {
		return time.Time{}, fmt.Errorf("harness: %s %s is running", c.cfg.System, c.members[i].name)
	}
	if err := c.start(i); err != nil {
		return time.Time{}, err
	}
	return c.proc(i).started, nil
}

// exited reports whether member i's process ended on its own (crashed),
// and how.
func (c *Cluster) exited(i int) (bool, string) {
	p := c.proc(i)
	if p == nil {
		return false, ""
	}
	select {
	case <-p.exited:
		return true, fmt.Sprintf("%s %s: %s\n%s", c.cfg.System, c.members[i].name, p.cmd.ProcessState, logTail(c.members[i].logPath))
	default:
		return false, ""
	}
}

// Crashed returns a description of the members whose process ended on
// its own, or "" if none did.
func (c *Cluster) Crashed() string {
	var out []string
	for i := range c.members {
		if ok, how := c.exited(i); ok {
			out = append(out, how)
		}
	}
	return strings.Join(out, "\n")
}

// PeakRSS returns the VmHWM of member i's running process, in bytes.
func (c *Cluster) PeakRSS(i int) (int64, error) {
	p := c.proc(i)
	if p == nil {
		return 0, fmt.Errorf("harness: %s %s is not running", c.cfg.System, c.members[i].name)
	}
	kb, err := readStatusKB(p.cmd.Process.Pid, "VmHWM")
	return kb * 1024, err
}

// Usage returns the CPU time of all the cluster's processes so far,
// including those killed, and the largest peak RSS among them.
func (c *Cluster) Usage() (Usage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.dead
	for _, m := range c.members {
		if m.proc == nil {
			continue
		}
		select {
		case <-m.proc.exited:
			u.add(m.proc.finalUsage())
			continue
		default:
		}
		pu, err := readUsage(m.proc.cmd.Process.Pid)
		if err != nil {
			select {
			case <-m.proc.exited: // it ended while we read
				u.add(m.proc.finalUsage())
				continue
			default:
				return Usage{}, err
			}
		}
		u.add(pu)
	}
	return u, nil
}

// Leader returns the index of the member that is raft leader, asking each
// running member's Status: the leader is the one whose member ID is the
// leader ID it reports.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	var last error
	for i := range c.members {
		if c.proc(i) == nil {
			continue
		}
		cli, err := newClient([]string{c.Endpoint(i)})
		if err != nil {
			return -1, err
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, c.Endpoint(i))
		cancel()
		cli.Close()
		if err != nil {
			last = err
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return -1, fmt.Errorf("harness: no member says it leads (last error: %v)", last)
}

// Close kills every member and removes the cluster's directory.
func (c *Cluster) Close() error {
	c.mu.Lock()
	procs := make([]*process, 0, len(c.members))
	for _, m := range c.members {
		if m.proc != nil {
			procs = append(procs, m.proc)
			m.proc = nil
		}
	}
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	return os.RemoveAll(c.dir)
}

// newClient returns an etcd client of endpoints that logs nothing.
// Requests bound their own time with their context.
func newClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      nopLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("harness: client of %v: %w", endpoints, err)
	}
	return cli, nil
}

// logTail returns the end of a member's log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const keep = 2048
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}
