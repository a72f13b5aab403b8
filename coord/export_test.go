package coord

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ProposePut lets the external tests reach propose directly, with contexts a
// gRPC client would never send (one that already expired).
func (s *Server) ProposePut(ctx context.Context, r *pb.PutRequest) error {
	_, err := s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	return err
}

// SoleVoterShortcut reports whether the member serves linearizable reads
// and keep-alives without confirming its leadership (it leads as the only
// voter).
func (s *Server) SoleVoterShortcut() bool { return s.reads.sole.Load() }

// RefuseForwardStream makes the member answer the forward stream as a
// coordd from before it would (Unimplemented), for followers to fall back.
func (s *Server) RefuseForwardStream(on bool) { s.refuseForwardStream.Store(on) }

// HoldReads makes a leader refuse linearizable reads, as it does between
// its election and the apply of its first barrier; ReleaseReads undoes it.
func (s *Server) HoldReads()    { s.reads.setReady(0) }
func (s *Server) ReleaseReads() { s.reads.setReady(s.node.raft.CurrentTerm()) }

// SetCommitTimeout sets raft's CommitTimeout for a member.
func SetCommitTimeout(c *Config, d time.Duration) { c.commitTimeout = d }

// CampaignNudges returns coord_server_campaign_nudges_total for reason
// ("deadline", "vote_request" or "after_other").
func (s *Server) CampaignNudges(reason string) float64 {
	families, err := s.metrics.reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != "coord_server_campaign_nudges_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// CheckLeaderNow makes the member's raft look for its leader at once, as
// campaignLoop does when the leader is silent past its deadline.
func (s *Server) CheckLeaderNow() error { return s.node.checkLeaderNow(s.cfg.ElectionTimeout) }

// HoldLogWrites stops the member's writes to its raft log until release
// is called: a leader's deferred writes wait, and so does anything that
// needs the log written (asyncLog).
func (s *Server) HoldLogWrites() (release func()) {
	s.node.alog.wmu.Lock()
	return s.node.alog.wmu.Unlock
}

// LogIndexes returns the member's raft commit and last index, the index
// up to which its log is on disk, and the index its store has applied.
func (s *Server) LogIndexes() (commit, last, synced, applied uint64) {
	r := s.node.raft
	return r.CommitIndex(), r.LastIndex(), s.node.alog.syncedIndex(), s.fsm.appliedIndex()
}

// Barrier commits a raft barrier on the leader.
func (s *Server) Barrier(d time.Duration) error { return s.node.raft.Barrier(d).Error() }

// Snapshot makes raft snapshot now and returns the snapshot's index.
func (s *Server) Snapshot() (uint64, error) {
	f := s.node.raft.Snapshot()
	if err := f.Error(); err != nil {
		return 0, err
	}
	meta, rc, err := f.Open()
	if err != nil {
		return 0, err
	}
	rc.Close()
	return meta.Index, nil
}

// LatestSnapshotIndex is the index of the newest snapshot on disk.
func (s *Server) LatestSnapshotIndex() uint64 { return s.node.latestSnapshotIndex() }

// DeferLogWrites turns the leader's deferred log writes (asyncLog) on or
// off, for benchmarks that compare the two.
func (s *Server) DeferLogWrites(on bool) {
	r := s.node.raft
	leading := func() bool { return on && r.State() == raft.Leader }
	s.node.alog.leading.Store(&leading)
}
