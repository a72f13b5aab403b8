package coord

import (
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"
)

// A follower of hashicorp/raft keeps its leader until its own heartbeat
// timer, drawn again in [timeout, 2×timeout) each time it fires, finds the
// leader silent for a whole timeout; until then it refuses to vote for
// anyone else. After a leader dies, an election can therefore only succeed
// once the slowest follower's timer has fired, 1.5 to 2.8 timeouts after
// the leader's last heartbeat: leader-kill took 1.66 s here against etcd's
// 1.32 s with the same 1 s election timeout.
//
// campaignClock makes every follower check on its own clock instead: it
// gives the leader's silence a deadline of the election timeout plus a
// random part of up to half of it, drawn again at every contact, and once
// the silence passes it asks raft to look at once (see node.checkLeaderNow).
// raft's own timer still runs, so a follower never campaigns later than it
// did, and never earlier than one election timeout after the last contact:
// the floor etcd's --election-timeout promises. Half a timeout of spread
// keeps two followers' campaigns apart by far more than a vote's round
// trip, so split votes stay rare.
//
// Before it nudges, the follower dials the leader's raft port. A leader
// that crashed refuses at once (or, cut off, does not answer), and the
// follower campaigns; one that accepts is alive but slow to send
// heartbeats (overloaded, paused in a long write), and raft's own, more
// patient timer decides, as before. Racing to replace a live leader only
// costs writes.
type campaignClock struct {
	timeout time.Duration
	jitter  func(max time.Duration) time.Duration

	contact  time.Time     // the last contact the deadline was drawn for
	deadline time.Time     // when the silence after contact is too long
	nudged   time.Time     // the contact of the last nudge, so one per silence
	poll     time.Duration // how soon to look again when nothing is due
}

func newCampaignClock(timeout time.Duration) *campaignClock {
	return &campaignClock{
		timeout: timeout,
		jitter:  func(max time.Duration) time.Duration { return rand.N(max) },
		poll:    max(timeout/10, time.Millisecond),
	}
}

// step looks at the member at now. It reports whether raft should check
// for a leader at once, and how long to wait before the next step.
func (c *campaignClock) step(now time.Time, state raft.RaftState, contact time.Time) (nudge bool, next time.Duration) {
	if state != raft.Follower || contact.IsZero() {
		// Leaders and candidates run their own timers; a member that never
		// heard from a leader is still starting, and raft's timer (or
		// campaignIfAlone) covers it.
		return false, c.poll
	}
	if !contact.Equal(c.contact) {
		c.contact = contact
		c.deadline = contact.Add(c.timeout + c.jitter(c.timeout/2))
	}
	if now.Before(c.deadline) {
		return false, c.deadline.Sub(now)
	}
	if c.nudged.Equal(contact) {
		return false, c.poll // nudged for this silence already; raft decides
	}
	c.nudged = contact
	return true, c.poll
}

// campaignLoop runs the member's campaignClock until the server stops.
func (s *Server) campaignLoop() {
	r := s.node.raft
	c := newCampaignClock(s.cfg.ElectionTimeout)
	t := time.NewTimer(c.poll)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		nudge, next := c.step(time.Now(), r.State(), r.LastContact())
		if nudge && !s.node.leaderAnswers(s.cfg.ElectionTimeout/4) {
			s.node.checkLeaderNow(s.cfg.ElectionTimeout)
		}
		t.Reset(next)
	}
}

// checkLeaderNow makes a follower check at once whether it has heard from
// its leader within timeout (raft's heartbeat timeout, which Config's
// election timeout sets), and campaign if not. raft has no "campaign now";
// lowering the heartbeat timeout wakes a follower's timer at once, and the
// timeout goes back right after.
func (n *node) checkLeaderNow(timeout time.Duration) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	cur := n.raft.ReloadableConfig()
	short := cur
	short.HeartbeatTimeout = timeout - time.Nanosecond
	if err := n.raft.ReloadConfig(short); err != nil {
		return
	}
	cur.HeartbeatTimeout = timeout
	n.raft.ReloadConfig(cur)
}

// leaderAnswers reports whether the leader this member knows accepts a raft
// connection within timeout. The connection names the leader's incarnation
// and closes without a command, which the leader ignores.
func (n *node) leaderAnswers(timeout time.Duration) bool {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return false
	}
	c, err := n.stream.Dial(addr, timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
