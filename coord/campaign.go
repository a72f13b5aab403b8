package coord

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
// campaignClock makes every follower check on its own clock instead. The
// leader's silence gets a deadline of the election timeout plus an offset
// that puts the followers in an order: the follower ranked first (by ID
// among the voters other than the leader) looks after one timeout and a
// small random part, the next a quarter of a timeout later, and so on.
// When the silence passes its deadline, the follower asks raft to look at
// once (see node.checkLeaderNow).
//
// The first follower to campaign is refused by the others, who still hold
// the leader. So a follower that receives a vote or pre-vote request
// (reported by a raft Observer) moves its deadline up to the floor: one
// timeout after its last contact. It then campaigns, and the member that asked first, a candidate
// now and without a leader, votes for it. An election after a crash
// therefore takes about one timeout plus a few round trips, where etcd's
// fastest randomized follower takes 1 to 2 timeouts.
//
// Before it nudges, the follower dials the leader's raft port. A leader
// that crashed refuses at once (or, cut off, does not answer), and the
// follower campaigns; one that accepts is alive but slow to send
// heartbeats (overloaded, paused in a long write), and raft's own, more
// patient timer decides, as before. Racing to replace a live leader only
// costs writes. raft's own timer still runs, so a follower never
// campaigns later than it did, and never earlier than one election
// timeout after the last contact: the floor etcd's --election-timeout
// promises, and the one the leader lease (leader_lease.go) rests on.
type campaignClock struct {
	timeout time.Duration
	jitter  func(max time.Duration) time.Duration

	offset  time.Duration // the random part, drawn again after each nudge
	nudged  time.Time     // the contact of the last nudge, so one per silence
	poll    time.Duration // how soon to look again when nothing is due
	spacing time.Duration // between two ranks
}

func newCampaignClock(timeout time.Duration) *campaignClock {
	c := &campaignClock{
		timeout: timeout,
		jitter:  func(max time.Duration) time.Duration { return rand.N(max) },
		poll:    max(timeout/10, time.Millisecond),
		spacing: timeout / 4,
	}
	c.offset = c.jitter(c.maxJitter())
	return c
}

// maxJitter bounds the random part of a deadline: it only separates
// followers that disagree on their ranks (a configuration changing while
// the leader dies), and a vote's round trip is a few milliseconds.
func (c *campaignClock) maxJitter() time.Duration { return max(c.timeout/16, time.Microsecond) }

// silence is what campaignClock looks at: the member's state, its last
// contact with a leader, whether raft still holds that leader, its rank
// among the followers, and the last time another member asked for its
// vote.
type silence struct {
	state      raft.RaftState
	contact    time.Time
	leaderless bool
	rank       int
	asked      time.Time
}

// Why a follower nudged raft: the label of coord_server_campaign_nudges_total.
const (
	nudgeDeadline    = "deadline"     // its own deadline passed
	nudgeVoteRequest = "vote_request" // another member asked for a vote, or to go first
	nudgeAfterOther  = "after_other"  // another member went first at its request (campaign_first.go)
)

// step looks at the member at now. It reports why raft should check for a
// leader at once ("" if it should not), and how long to wait before the
// next step.
func (c *campaignClock) step(now time.Time, s silence) (nudge string, next time.Duration) {
	if s.state != raft.Follower || s.contact.IsZero() {
		// Leaders and candidates run their own timers; a member that never
		// heard from a leader is still starting, and raft's timer (or
		// campaignIfAlone) covers it.
		return "", c.poll
	}
	if c.nudged.Equal(s.contact) {
		return "", c.poll // nudged for this silence already; raft decides
	}
	if s.leaderless {
		// raft let the leader go: an election is under way, and raft's
		// randomized timers run it. Nudged, every follower that voted in
		// a failed round would campaign one timeout after its vote, all
		// together, and split the next round's votes too: 5 members went
		// 10 s without a leader after one kill in twenty.
		return "", c.poll
	}
	floor := s.contact.Add(c.timeout)
	deadline, why := floor.Add(time.Duration(s.rank)*c.spacing+c.offset), nudgeDeadline
	if s.asked.After(s.contact) {
		// Another member campaigns: the leader may be gone.
		deadline, why = floor, nudgeVoteRequest
	}
	if now.Before(deadline) {
		// A later contact only moves the deadline later, and a vote
		// request wakes the loop, so sleeping until it is not late (a
		// rank that moves up with a new configuration waits for this
		// deadline once).
		return "", deadline.Sub(now)
	}
	c.nudged = s.contact
	c.offset = c.jitter(c.maxJitter())
	return why, c.poll
}

// followerRank is self's place, counted from 0, among the voters of cfg
// other than leader, in the order of their IDs: the order in which the
// followers look for a silent leader. A member not in cfg ranks first.
func followerRank(cfg raft.Configuration, self, leader raft.ServerID) int {
	var ids []raft.ServerID
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter && s.ID != leader {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return max(slices.Index(ids, self), 0)
}

// campaignLoop runs the member's campaignClock until the server stops.
func (s *Server) campaignLoop() {
	r := s.node.raft
	asks := make(chan raft.Observation, 1)
	obs := raft.NewObserver(asks, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RequestVoteRequest, raft.RequestPreVoteRequest:
			return true
		}
		return false
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)

	c := newCampaignClock(s.cfg.ElectionTimeout)
	self := raft.ServerID(s.cfg.Name)
	var asked time.Time
	t := time.NewTimer(c.poll)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-asks:
			asked = time.Now()
		case <-s.campaignFirst:
			asked = time.Now() // as for a vote request: campaign at the floor
		case <-t.C:
		}
		_, leader := r.LeaderWithID()
		rank := 0
		if f := r.GetConfiguration(); f.Error() == nil {
			rank = followerRank(f.Configuration(), self, leader)
		}
		why, next := c.step(time.Now(), silence{state: r.State(), contact: r.LastContact(), leaderless: leader == "", rank: rank, asked: asked})
		if why != "" && !s.node.leaderAnswers(s.cfg.ElectionTimeout/4) {
			if why == nudgeDeadline {
				switch s.letOthersGoFirst(leader, asks) {
				case otherWentFirst:
					why = nudgeAfterOther
				case stopping:
					return
				}
			}
			if err := s.node.checkLeaderNow(s.cfg.ElectionTimeout); err != nil {
				s.log.Warn("leader silent and unreachable, but raft was not nudged", "err", err)
			} else {
				s.metrics.campaignNudges.WithLabelValues(why).Inc()
			}
		}
		t.Reset(next) // since Go 1.23, Reset drops a tick not yet received
	}
}

// checkLeaderNow makes a follower check at once whether it has heard from
// its leader within timeout (raft's heartbeat timeout, which Config's
// election timeout sets), and campaign if not. raft has no "campaign now";
// lowering the heartbeat timeout, by nudgeBy, wakes a follower's timer at
// once, and the timeout goes back right after.
func (n *node) checkLeaderNow(timeout time.Duration) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	cur := n.raft.ReloadableConfig()
	short := cur
	short.HeartbeatTimeout = timeout - nudgeBy
	if err := n.raft.ReloadConfig(short); err != nil {
		return fmt.Errorf("coord: look for a leader at once: %w", err)
	}
	cur.HeartbeatTimeout = timeout
	if err := n.raft.ReloadConfig(cur); err != nil {
		return fmt.Errorf("coord: restore the heartbeat timeout: %w", err)
	}
	return nil
}

// nudgeBy is how much checkLeaderNow lowers the heartbeat timeout. raft
// refuses a heartbeat timeout below its LeaderLeaseTimeout, so openNode
// sets that nudgeBy short of the election timeout. A follower nudged at
// one election timeout of silence campaigns whichever of the two values
// raft reads.
const nudgeBy = time.Millisecond

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
