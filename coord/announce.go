package coord

import (
	"time"

	"github.com/hashicorp/raft"
)

// A follower learns that an entry is committed from the leader's next
// AppendEntries. hashicorp/raft sends one when the leader appends a new
// entry or, when none follows, after CommitTimeout (5-10 ms as coordd
// had it), so a write that arrives alone reached the watchers and readers
// of a follower that much later than those of the leader. etcd's leader sends the new
// commit index to its followers as soon as it advances.
//
// announceCommits closes that gap on the leader. When the FSM has applied
// an entry and, announceGrace later, nothing newer has been appended, it
// commits a barrier: raft sends the barrier with the commit index, which
// by then covers the entry. A barrier never reaches the FSM, so it
// announces nothing itself, and under a steady stream of writes the next
// write carries the commit index and no barrier is made. What it costs is
// a small log entry, and its fsync on every member, per write that comes
// alone.
//
// raft gives no way to send the commit index without an entry: the
// replicators wake only for new entries and their CommitTimeout, which is
// now raft's default of 50 ms, a fallback for an announcement that failed.
// A shorter one costs an idle cluster CPU on every tick.
const announceGrace = time.Millisecond

// announceCommits runs on every member for the life of the server; it acts
// only while the member leads a configuration with other voters.
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
		if s.node.raft.State() != raft.Leader || !s.hasOtherVoters() {
			continue
		}
		// A write that arrives within the grace carries the commit index;
		// waiting for it keeps a client writing in a loop from paying for a
		// barrier's fsync before each of its writes.
		grace.Reset(announceGrace)
		select {
		case <-s.stopc:
			return
		case <-grace.C:
		}
		applied := s.fsm.appliedIndex()
		if applied <= announced || s.node.raft.LastIndex() > applied {
			// Announced already, or newer entries are on their way; their
			// own apply brings this loop back.
			continue
		}
		// Bounded by the election timeout, so that Close, which waits for
		// this loop, never waits long for a leader that lost its quorum.
		if s.node.raft.Barrier(s.cfg.ElectionTimeout).Error() == nil {
			announced = applied
			s.metrics.commitAnnounced.Inc()
		}
	}
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
