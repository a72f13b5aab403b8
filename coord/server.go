package coord

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// Server is one coordd member: a raft node applying etcd v3 requests to a
// kvstore, and the etcd v3 gRPC API in front of it.
type Server struct {
	cfg           Config
	log           *slog.Logger
	store         *kvstore.Store
	fsm           *fsm
	node          *node
	lessor        *lessor
	reads         *readIndex
	followerReads *followerReads
	grpc          *grpc.Server
	health        *health.Server
	listener      net.Listener
	members       *membership
	forward       *forwarder
	metrics       *metrics
	http          *http.Server
	memberID      uint64
	clusterID     uint64

	// ackedRev and ackedCompact: the highest revision and compaction of a
	// write this member forwarded and acknowledged before applying it
	// itself; local reads wait for them (see forwarded).
	ackedRev, ackedCompact atomic.Int64

	refuseForwardStream atomic.Bool // tests: answer as a coordd without it

	// campaignFirst wakes campaignLoop when a follower about to campaign
	// asked this member to go first; askingFirst is set while this member
	// asks the others (campaign_first.go).
	campaignFirst chan struct{}
	askingFirst   atomic.Bool

	stopc chan struct{}
	wg    sync.WaitGroup // goroutines the server started
	once  sync.Once
}

// New builds a server from cfg; Start opens its files and sockets.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("member", cfg.Name),
		store:     kvstore.New(kvstore.Config{MaxTxnOps: cfg.MaxTxnOps}),
		memberID:  hash64(cfg.Name),
		clusterID: hash64(cfg.ClusterName),
		stopc:     make(chan struct{}),

		campaignFirst: make(chan struct{}, 1),
	}
	s.lessor = newLessor(s)
	s.fsm = newFSM(s.store, cfg.QuotaBytes, s.lessor)
	// Before raft starts applying: the FSM reads observeApply unlocked.
	// The gauges read the node only when scraped, after Start.
	s.metrics = newMetrics(s)
	s.fsm.observeApply = s.metrics.apply.Observe
	return s, nil
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Start opens the data dir and the listeners, replays the log and starts
// serving. It returns once the API listens; the member may still be
// electing a leader.
func (s *Server) Start() (err error) {
	n, err := openNode(s.cfg, s.fsm)
	if err != nil {
		return err
	}
	s.node = n
	// On failure, undo what was opened, and leave nothing for Close to
	// close a second time. Nothing has joined the gossip group yet (that is
	// the last step), so a failed start leaves no member behind.
	var lis, mlis net.Listener
	defer func() {
		if err == nil {
			return
		}
		if mlis != nil {
			mlis.Close()
		}
		if lis != nil {
			lis.Close()
			s.listener = nil
		}
		if s.members != nil {
			s.members.shutdown()
			s.members = nil
		}
		n.close()
		s.node = nil
	}()
	s.fsm.setApplied(n.latestSnapshotIndex()) // for snapshots without a recorded index
	s.reads = newReadIndex(s)
	n.alog.alone.Store(&s.reads.sole)
	s.followerReads = newFollowerReads(s)

	if lis, err = net.Listen("tcp", s.cfg.ClientAddr); err != nil {
		return fmt.Errorf("coord: listen for clients on %s: %w", s.cfg.ClientAddr, err)
	}
	s.listener = lis
	if s.cfg.MetricsAddr != "" {
		if mlis, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("coord: listen for metrics on %s: %w", s.cfg.MetricsAddr, err)
		}
	}
	s.forward = newForwarder(s)
	if s.members, err = openMembership(s); err != nil {
		return err
	}

	// Nothing below fails: from here on Close undoes what Start did.
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes+grpcOverheadBytes),
		grpc.MaxSendMsgSize(1<<31-1),
		grpc.ChainUnaryInterceptor(s.metrics.unary, s.requireLeaderUnary),
		grpc.ChainStreamInterceptor(s.metrics.stream, s.requireLeaderStream),
		// A pool of handler goroutines whose stacks have already grown:
		// a new goroutine per stream spent 13% of a keep-alive workload's
		// CPU growing its stack. A write holds its worker until raft has
		// applied it, so the pool is sized for the requests in flight,
		// not for the cores: with 8 workers, 256 clients' puts still ran
		// mostly on new goroutines.
		grpc.NumStreamWorkers(streamWorkers),
	)
	pb.RegisterKVServer(s.grpc, &kvServer{s: s})
	pb.RegisterWatchServer(s.grpc, &watchServer{s: s})
	pb.RegisterLeaseServer(s.grpc, &leaseServer{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceServer{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterServer{s: s})
	s.grpc.RegisterService(&internalServiceDesc, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)

	s.goFunc(func() {
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("client API stopped", "err", err)
		}
	})
	if mlis != nil {
		s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.goFunc(func() {
			if err := s.http.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener stopped", "err", err)
			}
		})
	}
	s.goFunc(s.reads.run)
	s.goFunc(s.followerReads.run)
	s.goFunc(s.leadershipLoop)
	s.goFunc(s.announceCommits)
	s.goFunc(s.lessor.run)
	s.goFunc(s.campaignLoop)
	s.goFunc(s.reconcileLoop)
	if p := s.cfg.compactPolicy(); p != nil {
		s.goFunc(func() { s.compactLoop(p) })
	}
	if err := s.members.join(s.members.joinTo); err != nil {
		s.log.Warn("join failed; will retry", "join", s.members.joinTo, "err", err)
	}
	s.log.Info("serving", "client", lis.Addr().String(), "peer", s.cfg.PeerAddr, "data-dir", s.cfg.DataDir)
	return nil
}

// grpcOverheadBytes is what gRPC adds around a request of the maximum size.
const grpcOverheadBytes = 512 * 1024

// streamWorkers is the number of goroutines gRPC keeps for handling
// requests; a request beyond them gets a new goroutine. 256 idle workers
// hold a few MiB of stacks.
const streamWorkers = 256

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// ClientAddr returns the address the API listens on.
func (s *Server) ClientAddr() string { return s.listener.Addr().String() }

// Close stops serving and closes the data dir. If this member leads, it
// first tries to hand leadership to another member; it then leaves the
// gossip group, and the leader removes it from the cluster.
func (s *Server) Close() error { return s.close(true) }

// Crash stops the member the way a crash would, for fault-injection tests:
// no leadership handover and no leave, so it stays a member and the others
// see it fail. Everything it acknowledged is on disk already.
func (s *Server) Crash() error { return s.close(false) }

func (s *Server) close(graceful bool) error {
	var err error
	s.once.Do(func() {
		if !graceful && s.node != nil {
			// Raft would lead on while gRPC drains (up to 2 s); a killed
			// leader's followers elect at once.
			s.node.stream.crash()
		}
		if graceful && s.node != nil && s.node.raft.State() == raft.Leader && len(s.peers()) > 1 {
			if terr := s.transferLeadership(s.node.raft.LeadershipTransfer); terr != nil {
				s.log.Warn("leadership transfer before shutdown failed", "err", terr)
			}
		}
		if graceful && s.members != nil {
			s.members.leave()
		}
		if s.http != nil {
			s.http.Close()
		}
		close(s.stopc)
		if s.grpc != nil {
			s.health.Shutdown()
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				s.grpc.Stop() // streams (watches, keep-alives) do not end on their own
				<-stopped
			}
		}
		s.wg.Wait()
		if s.members != nil {
			s.members.shutdown()
		}
		if s.forward != nil {
			s.forward.close()
		}
		if s.node != nil {
			err = s.node.close()
		}
	})
	return err
}

func (s *Server) peers() []raft.Server {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// header returns a response header at the current revision.
func (s *Server) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.clusterID, MemberId: s.memberID, Revision: rev, RaftTerm: s.node.raft.CurrentTerm()}
}

func (s *Server) fillHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId, h.MemberId, h.RaftTerm = s.clusterID, s.memberID, s.node.raft.CurrentTerm()
	if h.Revision == 0 {
		h.Revision = s.store.Rev()
	}
	return h
}

// propose replicates a request through raft and returns what applying it
// produced. An error from raft after the entry was handed over is
// indeterminate: the entry may still commit, so it is never retried here.
func (s *Server) propose(ctx context.Context, req *pb.InternalRaftRequest) (proto.Message, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return nil, errRequestTooLarge
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// raft reads a timeout of zero as "wait forever"; an expired context
	// was answered above, so timeout is positive here.
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	if s.node.raft.State() != raft.Leader {
		if addr, _ := s.node.raft.LeaderWithID(); addr == "" {
			return nil, errNoLeader
		}
		return nil, raft.ErrNotLeader
	}
	f := s.node.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	res := f.Response().(applyResult)
	return res.resp, res.err
}

// leadershipLoop watches this member win and lose leadership. On winning it
// commits a barrier in the new term, so that everything earlier is applied,
// before it serves linearizable reads or runs lease expiry.
func (s *Server) leadershipLoop() {
	for {
		select {
		case <-s.stopc:
			return
		case leader := <-s.node.raft.LeaderCh():
			if !leader {
				s.reads.setReady(0)
				s.lessor.demote()
				s.log.Info("lost leadership")
				continue
			}
			s.metrics.leaderSeen.Inc()
			term := s.node.raft.CurrentTerm()
			if !s.barrier() {
				continue
			}
			s.lessor.promote()
			s.reads.setReady(term)
			s.log.Info("leading", "term", term)
		}
	}
}

// barrier commits a barrier in the current term, retrying while this member
// still leads; it reports whether the member leads with the barrier applied.
func (s *Server) barrier() bool {
	for {
		err := s.node.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			return true
		}
		if s.node.raft.State() != raft.Leader {
			return false
		}
		s.log.Warn("barrier after election failed; retrying", "err", err)
		select {
		case <-s.stopc:
			return false
		case <-time.After(s.cfg.HeartbeatTimeout):
		}
	}
}

// IsolatePeers cuts this member's raft traffic to and from every other
// member (on) or restores it (off), as a network partition would; client
// connections and gossip are untouched. It exists for fault-injection
// tests.
func (s *Server) IsolatePeers(on bool) { s.node.stream.isolate(on) }

// IsLeader reports whether this member currently leads.
func (s *Server) IsLeader() bool { return s.node.raft.State() == raft.Leader }
