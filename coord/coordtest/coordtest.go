// Package coordtest starts coordd members inside a test process, on
// loopback ports, with their data in the test's temporary directory, for
// the tests of coord and of everything built on it.
package coordtest

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
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
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
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
	s, err := coord.New(m.Config)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.Server = s
	m.t.Cleanup(func() { m.Stop() })
	m.WaitReady()
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

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
