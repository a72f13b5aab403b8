package coord

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a Server. Zero fields take the defaults of DefaultConfig
// in New.
type Config struct {
	// Name identifies this member; it is also its raft server ID.
	Name string
	// DataDir holds the raft log, the stable store and the snapshots.
	DataDir string
	// ClientAddr is the host:port the etcd v3 gRPC API listens on.
	ClientAddr string
	// AdvertiseClientAddr is the client address other members forward to
	// and MemberList shows; default: the address ClientAddr listens on.
	AdvertiseClientAddr string
	// PeerAddr is the host:port raft listens on.
	PeerAddr string
	// AdvertisePeerAddr is the raft address other members dial; default PeerAddr.
	AdvertisePeerAddr string
	// ClusterName seeds the cluster ID reported in response headers.
	ClusterName string
	// GossipAddr is the host:port memberlist binds and advertises.
	GossipAddr string
	// Join lists gossip addresses of members to join.
	Join []string
	// BootstrapExpect is how many members bootstrap the cluster together
	// once they see each other. 1 (the default) with no Join (or only its
	// own gossip address) bootstraps this member alone; a member with Join
	// and BootstrapExpect 1 joins an existing cluster and is added by its
	// leader.
	BootstrapExpect int

	// SnapshotCount is the number of applied entries between snapshots.
	SnapshotCount uint64
	// SnapshotInterval is how often raft checks whether SnapshotCount
	// entries have passed (at a random moment between it and twice it).
	// It bounds the log a restart replays beyond SnapshotCount entries:
	// raft's own default, 2 minutes, let a member under a steady write
	// load restart through minutes of log.
	SnapshotInterval time.Duration
	// MaxRequestBytes bounds the size of one request (etcd's
	// --max-request-bytes); larger ones fail with "request is too large".
	MaxRequestBytes int
	// MaxTxnOps bounds the ops of each txn branch.
	MaxTxnOps int
	// QuotaBytes bounds the store's size; past it writes that add data fail
	// with etcd's "database space exceeded" and the NOSPACE alarm is raised.
	QuotaBytes int64

	// HeartbeatTimeout and ElectionTimeout tune raft; the minimum lease TTL
	// is ceil(1.5 × ElectionTimeout), as in etcd.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// ApplyTimeout bounds how long a write waits for raft.
	ApplyTimeout time.Duration

	// AutoCompactionMode and AutoCompactionRetention compact history on
	// the leader as etcd's flags of the same names: periodic keeps the last
	// AutoCompactionRetention of history (a duration), revision keeps the
	// last AutoCompactionRevisions revisions. Zero retention: off.
	AutoCompactionMode      CompactionMode
	AutoCompactionRetention time.Duration
	AutoCompactionRevisions int64
	AutoCompactionInterval  time.Duration // how often to check; default as etcd

	// MetricsAddr, if set, is the host:port of the HTTP listener serving
	// /metrics (Prometheus) and /health.
	MetricsAddr string
	// EnablePprof adds Go's /debug/pprof/ handlers to the metrics listener.
	EnablePprof bool

	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger

	// commitTimeout overrides raft's CommitTimeout (defaultCommitTimeout);
	// tests set it.
	commitTimeout time.Duration
}

// DefaultConfig returns the defaults of a single member, as etcd's.
func DefaultConfig() Config {
	return Config{
		Name:             "default",
		DataDir:          "coord-data",
		ClientAddr:       "127.0.0.1:2379",
		PeerAddr:         "127.0.0.1:2380",
		GossipAddr:       "127.0.0.1:2381",
		BootstrapExpect:  1,
		ClusterName:      "coord",
		SnapshotCount:    10000,
		SnapshotInterval: 5 * time.Second,
		MaxRequestBytes:  1536 * 1024,
		MaxTxnOps:        128,
		QuotaBytes:       2 << 30,
		HeartbeatTimeout: 100 * time.Millisecond,
		ElectionTimeout:  1000 * time.Millisecond,
		ApplyTimeout:     5 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.ClientAddr == "" {
		c.ClientAddr = d.ClientAddr
	}
	if c.PeerAddr == "" {
		c.PeerAddr = d.PeerAddr
	}
	if c.AdvertisePeerAddr == "" {
		c.AdvertisePeerAddr = c.PeerAddr
	}
	if c.GossipAddr == "" {
		c.GossipAddr = d.GossipAddr
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = d.BootstrapExpect
	}
	if c.ClusterName == "" {
		c.ClusterName = d.ClusterName
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = d.SnapshotCount
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = d.MaxRequestBytes
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = d.MaxTxnOps
	}
	if c.QuotaBytes == 0 {
		c.QuotaBytes = d.QuotaBytes
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first inconsistency of a configuration, after
// defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, a := range []struct{ name, addr string }{
		{"client address", c.ClientAddr}, {"peer address", c.PeerAddr}, {"advertised peer address", c.AdvertisePeerAddr},
		{"gossip address", c.GossipAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("coord: %s %q: %w", a.name, a.addr, err)
		}
	}
	switch c.AutoCompactionMode {
	case "", CompactPeriodic, CompactRevision:
	default:
		return fmt.Errorf("coord: auto-compaction mode %q: want periodic or revision", c.AutoCompactionMode)
	}
	if c.AutoCompactionRetention < 0 || c.AutoCompactionRevisions < 0 {
		return errors.New("coord: auto-compaction retention must not be negative")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("coord: metrics address %q: %w", c.MetricsAddr, err)
		}
	}
	switch {
	case c.BootstrapExpect < 0:
		return errors.New("coord: bootstrap-expect must be positive")
	case c.MaxRequestBytes < 0:
		return errors.New("coord: max request bytes must be positive")
	case c.MaxTxnOps < 0:
		return errors.New("coord: max txn ops must be positive")
	case c.SnapshotInterval < 5*time.Millisecond:
		return errors.New("coord: snapshot interval must be at least 5ms")
	case c.QuotaBytes < 0:
		return errors.New("coord: quota must be positive")
	case c.ElectionTimeout < 10*time.Millisecond:
		return fmt.Errorf("coord: election timeout %v is below the 10ms raft can keep", c.ElectionTimeout)
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("coord: election timeout %v must be at least the heartbeat %v", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// compactPolicy returns the auto-compaction policy, or nil when it is off.
func (c Config) compactPolicy() *compactPolicy {
	switch {
	case c.AutoCompactionMode == CompactRevision && c.AutoCompactionRevisions > 0:
		return &compactPolicy{mode: CompactRevision, revisions: c.AutoCompactionRevisions}
	case c.AutoCompactionMode != CompactRevision && c.AutoCompactionRetention > 0:
		return &compactPolicy{mode: CompactPeriodic, period: c.AutoCompactionRetention}
	}
	return nil
}

func (c Config) autoCompactionInterval(p *compactPolicy) time.Duration {
	if c.AutoCompactionInterval > 0 {
		return c.AutoCompactionInterval
	}
	return p.interval()
}

// othersToJoin is Join without this member's own gossip address: an
// operator may pass one --join list, every member included, to all.
func (c Config) othersToJoin() []string {
	var out []string
	for _, a := range c.Join {
		if a != c.GossipAddr {
			out = append(out, a)
		}
	}
	return out
}

// minLeaseTTL is etcd's: ceil(1.5 × election timeout), in seconds.
func (c Config) minLeaseTTL() int64 {
	ms := c.ElectionTimeout.Milliseconds() * 3 / 2
	return (ms + 999) / 1000
}
