package coord

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCampaignClock(t *testing.T) {
	const timeout = time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCampaignClock(timeout)
	var drawn []time.Duration
	c.jitter = func(max time.Duration) time.Duration {
		if max != timeout/16 {
			t.Fatalf("jitter drawn up to %v, want %v", max, timeout/16)
		}
		d := time.Duration(len(drawn)+1) * 10 * time.Millisecond
		drawn = append(drawn, d)
		return d
	}
	c.offset = c.jitter(c.maxJitter()) // 10 ms
	follower := func(contact time.Time, rank int) silence {
		return silence{state: raft.Follower, contact: contact, rank: rank}
	}

	// Leaders, candidates and members that never heard from a leader are
	// left to raft.
	for _, st := range []raft.RaftState{raft.Leader, raft.Candidate} {
		if why, _ := c.step(t0.Add(time.Hour), silence{state: st, contact: t0}); why != "" {
			t.Fatalf("nudged a %v", st)
		}
	}
	if why, _ := c.step(t0.Add(time.Hour), follower(time.Time{}, 0)); why != "" {
		t.Fatal("nudged a follower that never had a leader")
	}

	// The second follower in rank waits a quarter timeout more than the
	// first: its deadline is timeout + 250 ms + 10 ms.
	why, next := c.step(t0.Add(500*time.Millisecond), follower(t0, 1))
	if why != "" || next != 760*time.Millisecond {
		t.Fatalf("step at +500ms: nudge %q next %v, want none and 760ms", why, next)
	}
	if why, _ := c.step(t0.Add(1259*time.Millisecond), follower(t0, 1)); why != "" {
		t.Fatal("nudged before the deadline")
	}
	if why, _ := c.step(t0.Add(1260*time.Millisecond), follower(t0, 1)); why != nudgeDeadline {
		t.Fatalf("nudge %q at the deadline, want %q", why, nudgeDeadline)
	}
	// Once per silence: raft decides from there.
	if why, _ := c.step(t0.Add(1500*time.Millisecond), follower(t0, 1)); why != "" {
		t.Fatal("nudged twice for one silence")
	}

	// A nudge draws a new random part (20 ms); the first in rank waits
	// only the timeout and that.
	t1 := t0.Add(2 * time.Second)
	if why, _ := c.step(t1.Add(1019*time.Millisecond), follower(t1, 0)); why != "" {
		t.Fatal("nudged before the new deadline")
	}
	if why, _ := c.step(t1.Add(1020*time.Millisecond), follower(t1, 0)); why != nudgeDeadline {
		t.Fatalf("nudge %q at the new deadline, want %q", why, nudgeDeadline)
	}
	if len(drawn) != 3 { // the first and one after each nudge
		t.Fatalf("drew %d random parts, want 3", len(drawn))
	}

	// Another member asking for a vote after the last contact brings the
	// deadline down to the floor, one timeout after the contact, and no
	// further.
	t2 := t1.Add(time.Hour)
	asked := follower(t2, 2)
	asked.asked = t2.Add(900 * time.Millisecond)
	why, next = c.step(t2.Add(900*time.Millisecond), asked)
	if why != "" || next != 100*time.Millisecond {
		t.Fatalf("asked at +900ms: nudge %q next %v, want none and 100ms", why, next)
	}
	if why, _ := c.step(t2.Add(timeout), asked); why != nudgeVoteRequest {
		t.Fatalf("nudge %q at the floor after a vote request, want %q", why, nudgeVoteRequest)
	}
	// A follower whose raft let the leader go is mid-election: raft's own
	// timers decide, whatever the requests.
	leaderless := follower(t2.Add(time.Minute), 0)
	leaderless.leaderless = true
	leaderless.asked = t2.Add(time.Minute + time.Millisecond)
	if why, _ := c.step(t2.Add(time.Minute+2*timeout), leaderless); why != "" {
		t.Fatalf("nudged (%q) a follower without a leader", why)
	}

	// A request from before the last contact is old news: the leader spoke
	// since.
	t3 := t2.Add(time.Hour)
	stale := follower(t3, 2)
	stale.asked = t3.Add(-time.Millisecond)
	if why, _ := c.step(t3.Add(timeout), stale); why != "" {
		t.Fatal("a vote request from before the last contact moved the deadline")
	}

	// The deadline is never before one election timeout: the floor holds
	// whatever the random part.
	c.jitter = func(time.Duration) time.Duration { return 0 }
	c.offset = 0
	t4 := t3.Add(time.Hour)
	early := follower(t4, 0)
	early.asked = t4.Add(time.Millisecond)
	if why, _ := c.step(t4.Add(timeout-time.Nanosecond), early); why != "" {
		t.Fatal("nudged before one election timeout of silence")
	}
}

func TestFollowerRank(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		{ID: "c", Suffrage: raft.Voter},
		{ID: "a", Suffrage: raft.Voter},
		{ID: "d", Suffrage: raft.Nonvoter},
		{ID: "b", Suffrage: raft.Voter},
		{ID: "e", Suffrage: raft.Voter},
	}}
	for _, tc := range []struct {
		self, leader raft.ServerID
		want         int
	}{
		{"a", "c", 0}, {"b", "c", 1}, {"e", "c", 2}, // the leader is not ranked
		{"b", "a", 0}, {"c", "a", 1},
		{"a", "", 0}, {"e", "", 3}, // no leader known: every voter is ranked
		{"d", "c", 0}, {"x", "c", 0}, // a non-voter or a stranger ranks first
	} {
		if got := followerRank(cfg, tc.self, tc.leader); got != tc.want {
			t.Errorf("rank of %s under leader %q: %d, want %d", tc.self, tc.leader, got, tc.want)
		}
	}
}
