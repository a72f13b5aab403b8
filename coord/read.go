package coord

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/hashicorp/raft"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

var (
	errNoLeader        = rpctypes.ErrGRPCNoLeader
	errRequestTooLarge = rpctypes.ErrGRPCRequestTooLarge
)

// readIndex serves linearizable reads: it confirms leadership once for every
// batch of reads waiting at that moment, takes the commit index seen then,
// and releases the batch once the store has applied up to it.
//
// A leader that is the only voter of its configuration needs no
// confirmation: no other member can be elected without its vote, and it
// votes for another only after it has stopped leading. Such a leader
// serves each read at once, without the round trip through raft's leader
// loop that VerifyLeader costs even with no one to ask. Whether it is the
// only voter is read from raft when it starts leading and after every
// configuration change this member makes (only a leader changes the
// configuration, and only through changeConfig); the flag is cleared
// before a change is handed to raft, so it is never set while raft's
// latest configuration has another voter.
type readIndex struct {
	s     *Server
	reads *batch[error]

	ready atomic.Uint64 // term in which this leader committed its barrier; 0: not ready

	cfgMu sync.Mutex  // serializes changeConfig and refreshSole
	sole  atomic.Bool // this member leads and is its configuration's only voter

	lease *leaderLease // for keep-alives (leader_lease.go)
}

func newReadIndex(s *Server) *readIndex {
	return &readIndex{s: s, reads: newBatch[error](), lease: newLeaderLease(s.cfg.ElectionTimeout)}
}

// setReady records the term in which this leader may serve reads (0: it
// may not, having lost leadership).
func (ri *readIndex) setReady(term uint64) {
	if term == 0 {
		ri.sole.Store(false)
		ri.lease.forget()
	}
	ri.ready.Store(term)
	if term != 0 {
		ri.refreshSole()
	}
}

// refreshSole reads from raft whether this member leads as the only voter.
func (ri *readIndex) refreshSole() {
	ri.cfgMu.Lock()
	defer ri.cfgMu.Unlock()
	ri.sole.Store(ri.soleVoter())
}

func (ri *readIndex) soleVoter() bool {
	r := ri.s.node.raft
	if r.State() != raft.Leader {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	voters := 0
	self := false
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
			self = self || srv.ID == raft.ServerID(ri.s.cfg.Name)
		}
	}
	return voters == 1 && self
}

// changeConfig makes a change to the raft configuration (AddVoter,
// RemoveServer), with the sole-voter shortcut off while it is under way.
func (s *Server) changeConfig(change func() raft.Future) error {
	ri := s.reads
	ri.cfgMu.Lock()
	defer ri.cfgMu.Unlock()
	ri.sole.Store(false)
	done := ri.lease.changing()
	defer done()
	err := change().Error()
	// raft's latest configuration includes an appended change even when
	// the call failed (timed out, or lost leadership before the commit).
	ri.sole.Store(ri.soleVoter())
	return err
}

// wait returns once a linearizable read may be served from the local store.
func (ri *readIndex) wait(ctx context.Context) error {
	if ri.sole.Load() {
		return ri.confirm(ctx, ri.ready.Load())
	}
	err, werr := ri.reads.join(ctx, ri.s.stopc)
	if werr != nil {
		return werr
	}
	return err
}

func (ri *readIndex) run() {
	ri.reads.rounds(ri.s.stopc, func() error {
		// A round serves many callers; each stops waiting on its own
		// context in join.
		return ri.confirm(context.Background(), ri.ready.Load())
	})
}

// confirm checks that this member still leads in a term in which it has
// committed, and waits until the store has applied what was committed at
// the moment leadership was confirmed.
func (ri *readIndex) confirm(ctx context.Context, readyTerm uint64) error {
	r := ri.s.node.raft
	if r.State() != raft.Leader {
		if addr, _ := r.LeaderWithID(); addr == "" {
			return errNoLeader
		}
		return raft.ErrNotLeader
	}
	if readyTerm == 0 || readyTerm != r.CurrentTerm() {
		return errNoLeader // elected, but not yet committed in this term
	}
	commit := r.CommitIndex()
	if !ri.sole.Load() {
		c := ri.lease.begin(readyTerm)
		if err := r.VerifyLeader().Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return raft.ErrNotLeader
			}
			return err
		}
		ri.lease.confirmed(c)
	}
	f := ri.s.fsm
	applied := f.appliedIndex()
	if applied >= commit {
		return nil
	}
	need := ri.s.node.lastEffectiveIndex(applied, commit)
	select {
	case <-f.waitApplied(need):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-ri.s.stopc:
		return ErrStopped
	}
}

// waitLocal waits until this member's store has reached revision rev and,
// if compacted > 0, compacted at least to it.
func (s *Server) waitLocal(ctx context.Context, rev, compacted int64) error {
	for {
		ch := s.fsm.changed()
		if s.store.Rev() >= rev && (compacted <= 0 || s.store.CompactRev() >= compacted) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopc:
			return ErrStopped
		}
	}
}

// linearize returns once this member's store may serve a linearizable
// read. The leader confirms its leadership (readIndex); a follower asks the
// leader (one call for all the reads waiting, see followerReads) for the
// revision it had at a confirmed moment and waits until its
// own store has caught up to it, then serves the read itself, as etcd's
// followers do. Every write committed before the read began has a
// revision at or below the one waited for.
func (s *Server) linearize(ctx context.Context) error {
	if s.servesLocally(ctx) {
		return s.reads.wait(ctx)
	}
	res, err := s.followerReads.revision(ctx)
	if err != nil {
		return err
	}
	if res.local {
		return s.reads.wait(ctx)
	}
	// The writes this member acknowledged for the leader (see forwarded)
	// are below the leader's revision, but a compaction is not: wait for
	// both.
	return s.waitLocal(ctx, max(res.rev, s.ackedRev.Load()), s.ackedCompact.Load())
}

// The internal service members use among themselves. It reuses etcd's
// message types, so it needs no generated code.
const readRevisionMethod = "/coord.Internal/ReadRevision"

type internalServer interface {
	readRevision(ctx context.Context) (int64, error)
}

// readRevision, on the leader, confirms leadership and returns the revision
// of its store once it has applied everything committed at that moment.
func (s *Server) readRevision(ctx context.Context) (int64, error) {
	if !s.IsLeader() {
		return 0, rpctypes.ErrGRPCNotLeader
	}
	if err := s.reads.wait(ctx); err != nil {
		return 0, toGRPC(err)
	}
	return s.store.Rev(), nil
}

var internalServiceDesc = grpc.ServiceDesc{
	ServiceName: "coord.Internal",
	HandlerType: (*internalServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "ReadRevision",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(pb.StatusRequest)); err != nil {
				return nil, err
			}
			rev, err := srv.(internalServer).readRevision(ctx)
			if err != nil {
				return nil, err
			}
			return &pb.StatusResponse{Header: &pb.ResponseHeader{Revision: rev}}, nil
		},
	}, {
		MethodName: "CampaignFirst",
		Handler: func(srv any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			out, err := srv.(*Server).serveCampaignFirst(in)
			if err != nil {
				return nil, err
			}
			return &out, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName: fwdStreamDesc.StreamName,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(*Server).serveForwardStream(stream)
		},
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "coord/internal",
}
