package coord

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// A follower learns that an entry is committed from the leader's next
// AppendEntries. hashicorp/raft sends one when the leader appends a new
// entry or, when none follows, after CommitTimeout (50 ms), so a write
// that arrives alone would reach the watchers and readers of a follower
// that much later than those of the leader. etcd's leader sends the new
// commit index to its followers as soon as it advances.
//
// announceCommits closes that gap on the leader. When the FSM has applied
// an entry and, announceGrace later, nothing newer has been appended, it
// sends each follower an AppendEntries of its own: no entries,
// PrevLogEntry and LeaderCommitIndex both the commit index C (capped at
// what the leader has on disk, as asyncLog requires), PrevLogTerm the term
// of the leader's entry at C, and the header of raft's own requests in the
// leader's current term. A follower whose entry at C has that term holds
// the leader's log up to C (raft's log matching), so it commits and
// applies up to C; any other refuses it and changes nothing.
//
// It goes on the follower's pipeline, behind the entries raft sent there,
// so the follower has them when it checks entry C. If entry C has not gone
// out on the pipeline yet, the announcement waits for it and follows it,
// unless raft's append of C carries a commit index that covers C already.
// raft's replicator takes the answer for that of an append without
// entries: it notes the follower's contact and changes nothing else.
//
// An announcement writes nothing to any log: it is one small request to
// each follower. Before it, the leader committed a raft barrier instead,
// whose append carried the commit index: a log entry and an fsync on every
// member per lone write, and the follower applied the write only after its
// fsync of the barrier (docs/server.md has what each cost).
func (s *Server) announceCommits() {
	grace := time.NewTimer(announceGrace)
	defer grace.Stop()
	var announced uint64 // followers have been sent a commit index >= this
	for {
		changed := s.fsm.changed()
		select {
		case <-s.stopc:
			return
		case <-changed:
		}
		r := s.node.raft
		if r.State() != raft.Leader || !s.hasOtherVoters() {
			continue
		}
		grace.Reset(announceGrace)
		select {
		case <-s.stopc:
			return
		case <-grace.C:
		}
		applied := s.fsm.appliedIndex()
		if applied <= announced || r.LastIndex() > applied {
			// Announced already, or newer entries are on their way: their
			// appends carry the commit index, and their apply brings this
			// loop back.
			continue
		}
		c, req, ok := s.commitAnnouncement(r.CurrentTerm())
		if !ok || c <= announced {
			continue
		}
		sent := false
		for _, srv := range s.peers() {
			if srv.ID != raft.ServerID(s.cfg.Name) && s.node.wire.announce(srv.ID, req) {
				sent = true
			}
		}
		if sent {
			announced = c
			s.metrics.commitAnnounced.Inc()
		}
	}
}

// announceGrace is how long the leader waits after an apply for a newer
// entry, whose append would carry the commit index, before it announces:
// a client writing in a loop over loopback sends its next write within it.
// Announcing at once made such a client's puts to the leader of three
// about 7% slower at the median (BenchmarkLeaderPut3, 7 alternating
// pairs), where it bought followers' watchers 0.3-0.5 ms.
const announceGrace = 250 * time.Microsecond

// errNoAnnouncement: the leader cannot say what is committed in its term
// yet (it has sent nothing in it), or its entry at the commit index is
// gone from its log.
var errNoAnnouncement = errors.New("coord: no commit announcement in this term yet")

// commitAnnouncement returns the commit index C that followers may be told
// in term, and the AppendEntries that tells them: no entries, the leader's
// entry at C as the previous entry, and C as the commit index.
func (s *Server) commitAnnouncement(term uint64) (uint64, *raft.AppendEntriesRequest, bool) {
	c, req, err := announcement(s.node.wire, s.node.logs, s.node.raft.CommitIndex(), term)
	return c, req, err == nil
}

// announcement builds the request commitAnnouncement describes from the
// leader's raft commit index, its log, and the header w saw last.
func announcement(w *syncedCommitTransport, logs raft.LogStore, commit, term uint64) (uint64, *raft.AppendEntriesRequest, error) {
	h := w.leader.Load()
	if h == nil || h.Term != term {
		return 0, nil, errNoAnnouncement
	}
	c := min(commit, w.synced())
	if c == 0 {
		return 0, nil, errNoAnnouncement
	}
	var l raft.Log
	if err := logs.GetLog(c, &l); err != nil {
		return 0, nil, errNoAnnouncement
	}
	return c, &raft.AppendEntriesRequest{
		RPCHeader:         h.RPCHeader,
		Term:              term,
		Leader:            h.Leader,
		PrevLogEntry:      c,
		PrevLogTerm:       l.Term,
		LeaderCommitIndex: c,
	}, nil
}

// hasOtherVoters reports whether this member's configuration has a voter
// besides itself.
func (s *Server) hasOtherVoters() bool {
	for _, srv := range s.peers() {
		if srv.Suffrage == raft.Voter && srv.ID != raft.ServerID(s.cfg.Name) {
			return true
		}
	}
	return false
}
