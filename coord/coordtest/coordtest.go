// Package coordtest starts coordd members inside a test process, on
// loopback ports, with their data in the test's temporary directory, for
// the tests of coord and of everything built on it.
package coordtest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one coordd member of a test cluster.
type Member struct {
	t      testing.TB
	Config coord.Config
	Server *coord.Server

	started bool // started once: its addresses are known to others
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// NewMember configures a member with fresh loopback ports and a data dir in
// the test's temporary directory, with short raft timeouts. It is not
// started. Tweak Config before Start.
func NewMember(t testing.TB, name string) *Member {
	t.Helper()
	cfg := coord.DefaultConfig()
	cfg.Name = name
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	cfg.ClientAddr = FreeAddr(t)
	cfg.PeerAddr = FreeAddr(t)
	cfg.AdvertisePeerAddr = cfg.PeerAddr
	cfg.GossipAddr = FreeAddr(t)
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	// Members log after their test ends (shutdown), so logs go to stderr
	// when COORDTEST_LOG is set, never to t.Log.
	var out io.Writer = io.Discard
	if os.Getenv("COORDTEST_LOG") != "" {
		out = os.Stderr
	}
	cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	return &Member{t: t, Config: cfg}
}

// StartSingle starts a one-member cluster, waits until it serves
// linearizable requests, and stops it when the test ends.
func StartSingle(t testing.TB) *Member {
	t.Helper()
	m := NewMember(t, "m0")
	m.Start()
	return m
}

// Start starts the member and waits until it answers a linearizable read.
func (m *Member) Start() {
	m.t.Helper()
	m.Launch()
	m.WaitReady()
}

// Launch starts the member without waiting for it to serve (members of a
// new cluster serve only once enough of them run).
//
// A port FreeAddr found free may be taken by another process before the
// member binds it; on its first start a member then moves to fresh ports,
// up to five times.
func (m *Member) Launch() {
	m.t.Helper()
	for attempt := 0; ; attempt++ {
		s, err := coord.New(m.Config)
		if err != nil {
			m.t.Fatal(err)
		}
		err = s.Start()
		if err == nil {
			m.Server = s
			m.started = true
			m.t.Cleanup(func() { m.Stop() })
			return
		}
		if m.started || attempt == 4 || !strings.Contains(err.Error(), "address already in use") {
			m.t.Fatal(err)
		}
		m.Config.ClientAddr, m.Config.PeerAddr, m.Config.GossipAddr = FreeAddr(m.t), FreeAddr(m.t), FreeAddr(m.t)
		m.Config.AdvertisePeerAddr = m.Config.PeerAddr
		if m.Config.MetricsAddr != "" {
			m.Config.MetricsAddr = FreeAddr(m.t)
		}
	}
}

// Cluster is a test cluster of members in this process.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// StartCluster starts n members that find each other by gossip and
// bootstrap raft together, and waits until every one of them serves.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, nil)
}

// StartClusterWith is StartCluster with every member's Config changed by
// tweak, if not nil, before the member starts.
func StartClusterWith(t testing.TB, n int, tweak func(*coord.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for i := range n {
		m := NewMember(t, fmt.Sprintf("m%d", i))
		m.Config.BootstrapExpect = n
		if tweak != nil {
			tweak(&m.Config)
		}
		c.Members = append(c.Members, m)
	}
	for i, m := range c.Members {
		if i > 0 {
			m.Config.Join = []string{c.Members[0].Config.GossipAddr}
		}
		m.Launch()
	}
	for _, m := range c.Members {
		m.WaitReady()
	}
	return c
}

// Leader returns the member that leads, waiting up to 10 seconds for one.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range c.Members {
			if m.Server != nil && m.Server.IsLeader() {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader after 10s")
	return nil
}

// Isolate cuts a member's raft traffic from the others, or heals it.
func (m *Member) Isolate(on bool) { m.Server.IsolatePeers(on) }

// Follower returns a running member that does not lead.
func (c *Cluster) Follower() *Member {
	c.t.Helper()
	l := c.Leader()
	for _, m := range c.Members {
		if m != l && m.Server != nil {
			return m
		}
	}
	c.t.Fatal("no running follower")
	return nil
}

// Others returns the members other than m, in the order of their names
// (the order of their raft IDs).
func (c *Cluster) Others(m *Member) []*Member {
	var others []*Member
	for _, o := range c.Members {
		if o != m {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b *Member) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	return others
}

// WaitReady waits, for at most 10 seconds, until the member answers a
// linearizable read.
func (m *Member) WaitReady() {
	m.t.Helper()
	c := m.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := contextWithTimeout(time.Second)
		_, err := c.Get(ctx, "coordtest/ready")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("member %s not ready after 10s: %v", m.Config.Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the member; its data dir stays for a restart.
func (m *Member) Stop() {
	if m.Server == nil {
		return
	}
	if err := m.Server.Close(); err != nil {
		m.t.Errorf("stop %s: %v", m.Config.Name, err)
	}
	m.Server = nil
}

// Kill stops the member as a crash would: no handover, no leave.
func (m *Member) Kill() {
	if m.Server == nil {
		return
	}
	if err := m.Server.Crash(); err != nil {
		m.t.Errorf("kill %s: %v", m.Config.Name, err)
	}
	m.Server = nil
}

// Restart stops the member and starts it again on its data dir.
func (m *Member) Restart() {
	m.t.Helper()
	m.Stop()
	m.Start()
}

// Endpoint returns the member's client endpoint.
func (m *Member) Endpoint() string { return m.Config.ClientAddr }

// Client returns a new etcd client connected to the member; the caller
// closes it.
func (m *Member) Client() *clientv3.Client {
	m.t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      nopLogger(),
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return c
}
