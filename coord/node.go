package coord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// node is the raft side of a server: the raft instance and the stores and
// transport it owns.
type node struct {
	raft      *raft.Raft
	logs      logStore
	alog      *asyncLog // under logs
	logFormat string    // "wal", or "boltdb" for data dirs made before the WAL
	snaps     *raft.FileSnapshotStore
	transport *raft.NetworkTransport
	stream    *peerStream
	// incarnation names this data dir; it is part of the raft address.
	incarnation string

	bootstrapped bool // raft had state when opened, or this member bootstrapped it

	reloadMu sync.Mutex // one checkLeaderNow at a time changes raft's config
}

// hasState reports whether this member has raft state: a log, a snapshot or
// a configuration received from a leader.
func (n *node) hasState() bool {
	if n.bootstrapped {
		return true
	}
	ok, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err == nil && ok {
		n.bootstrapped = true
	}
	return n.bootstrapped
}

// logStore is raft's log and stable store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// defaultCommitTimeout is raft's CommitTimeout (its own default). Followers
// learn the commit index from the leader's next AppendEntries; when no new
// entry follows, raft sends one after CommitTimeout. The leader announces
// the commit of a write that comes alone at once (announceCommits), so
// this is only the fallback, for an announcement that failed; every tick
// is an empty append to each follower, which is what an idle cluster
// spends its CPU on (docs/server.md).
const defaultCommitTimeout = 50 * time.Millisecond

// openLogStore opens the raft log of a data dir: a write-ahead log
// (raft-wal: appends are sequential and cost one fsync, against two for a
// BoltDB commit), or the BoltDB file of a data dir created before coord
// moved to the WAL, which it keeps using.
func openLogStore(dataDir string) (logStore, string, error) {
	bolt := filepath.Join(dataDir, "raft.db")
	if _, err := os.Stat(bolt); err == nil {
		s, err := raftboltdb.New(raftboltdb.Options{Path: bolt})
		return s, "boltdb", err
	}
	dir := filepath.Join(dataDir, "wal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, "", err
	}
	return walStore{w, meta}, "wal", nil
}

// walStore closes the WAL's metadata database too, which WAL.Close (v0.4.0)
// leaves open: a member restarted in the same process would wait forever
// for its file lock.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (w walStore) Close() error {
	err := w.WAL.Close()
	if merr := w.meta.Close(); err == nil {
		err = merr
	}
	return err
}

func openNode(cfg Config, f *fsm) (*node, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("coord: data dir: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: slogWriter{cfg.Logger.With("component", "raft")}})

	store, format, err := openLogStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("coord: open raft log: %w", err)
	}
	alog, err := newAsyncLog(store, func(err error) {
		cfg.Logger.Error("raft log write failed; stopping", "error", err)
		panic(err)
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("coord: open raft log: %w", err)
	}
	logs := newLogCache(alog)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, logger)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("coord: open snapshots: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.AdvertisePeerAddr)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("coord: advertised peer address: %w", err)
	}
	hasState, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("coord: read raft state: %w", err)
	}
	inc, err := loadIncarnation(cfg.DataDir, hasState)
	if err != nil {
		logs.Close()
		return nil, err
	}
	var quiet time.Duration
	if hasState {
		quiet = cfg.ElectionTimeout // see listenPeers
	}
	stream, err := listenPeers(cfg.PeerAddr, incAddr{tcp: adv.String(), incarnation: inc}, quiet)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("coord: listen for peers on %s: %w", cfg.PeerAddr, err)
	}
	transport := raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, logger)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.Logger = logger
	rc.HeartbeatTimeout = cfg.ElectionTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	// A leader that has not heard from a quorum for an election timeout
	// steps down, as etcd's CheckQuorum does. Nothing relies on it doing so
	// sooner (a renewal or a linearizable read confirms leadership itself),
	// and with one member down the survivor's every stall longer than this
	// deposes the leader and fails the writes in flight.
	// It is nudgeBy short of the election timeout, or raft would refuse
	// the heartbeat timeout checkLeaderNow sets for a moment.
	rc.LeaderLeaseTimeout = cfg.ElectionTimeout - nudgeBy
	rc.SnapshotThreshold = cfg.SnapshotCount
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = max(cfg.SnapshotCount, 1024)
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.CommitTimeout = defaultCommitTimeout
	if cfg.commitTimeout > 0 {
		rc.CommitTimeout = cfg.commitTimeout
	}

	f.waitSynced, f.drainLog = alog.waitSynced, alog.drain
	r, err := raft.NewRaft(rc, f, logs, logs, snaps, syncedCommitTransport{transport, alog.syncedIndex})
	if err != nil {
		transport.Close()
		logs.Close()
		return nil, fmt.Errorf("coord: start raft: %w", err)
	}
	leading := func() bool { return r.State() == raft.Leader }
	alog.leading.Store(&leading)
	n := &node{raft: r, logs: logs, alog: alog, snaps: snaps, transport: transport, stream: stream, incarnation: inc, logFormat: format, bootstrapped: hasState}
	if !hasState && cfg.BootstrapExpect <= 1 && len(cfg.othersToJoin()) == 0 {
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: transport.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.close()
			return nil, fmt.Errorf("coord: bootstrap: %w", err)
		}
	}
	if err := n.campaignIfAlone(rc.LocalID, rc.HeartbeatTimeout); err != nil {
		// Not fatal: raft's own timer elects the member within two
		// heartbeat timeouts.
		logger.Warn("a lone voter could not campaign at once", "error", err)
	}
	return n, nil
}

// campaignIfAlone starts an election at once if this member is the only
// voter of its configuration: nobody else can lead, so waiting out the
// heartbeat timeout (1 to 2 s) before leading only delays a restarted
// single member. It has never heard from a leader, so checkLeaderNow makes
// it campaign.
func (n *node) campaignIfAlone(self raft.ServerID, timeout time.Duration) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	if len(servers) != 1 || servers[0].ID != self || servers[0].Suffrage != raft.Voter {
		return nil
	}
	return n.checkLeaderNow(timeout)
}

func (n *node) close() error {
	err := n.raft.Shutdown().Error()
	n.transport.Close()
	if cerr := n.logs.Close(); err == nil {
		err = cerr
	}
	return err
}

// latestSnapshotIndex is the index of the newest snapshot on disk, 0 if none.
func (n *node) latestSnapshotIndex() uint64 {
	list, err := n.snaps.List()
	if err != nil || len(list) == 0 {
		return 0
	}
	return list[0].Index
}

// lastEffectiveIndex returns the largest index in (from, to] of an entry
// that reaches the FSM (a command or a configuration). Entries raft keeps to
// itself (a new leader's no-op, barriers) need no applying before a read.
func (n *node) lastEffectiveIndex(from, to uint64) uint64 {
	var l raft.Log
	for i := to; i > from; i-- {
		if err := n.logs.GetLog(i, &l); err != nil {
			continue // compacted into a snapshot, which the FSM has restored
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return from
}

// slogWriter feeds the line logs of raft and memberlist into slog, at the
// level their "[LEVEL]" prefix names.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(trimNewline(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		level = slog.LevelDebug
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[ERR"):
		level = slog.LevelError
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ io.Writer = slogWriter{}
