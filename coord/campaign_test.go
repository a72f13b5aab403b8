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
		if max != timeout/2 {
			t.Fatalf("jitter drawn up to %v, want %v", max, timeout/2)
		}
		d := time.Duration(len(drawn)+1) * 100 * time.Millisecond
		drawn = append(drawn, d)
		return d
	}

	// Leaders, candidates and members that never heard from a leader are
	// left to raft.
	for _, st := range []raft.RaftState{raft.Leader, raft.Candidate} {
		if nudge, _ := c.step(t0.Add(time.Hour), st, t0); nudge {
			t.Fatalf("nudged a %v", st)
		}
	}
	if nudge, _ := c.step(t0.Add(time.Hour), raft.Follower, time.Time{}); nudge {
		t.Fatal("nudged a follower that never had a leader")
	}

	// Silence after a contact: nothing before timeout+jitter (100 ms).
	nudge, next := c.step(t0.Add(500*time.Millisecond), raft.Follower, t0)
	if nudge || next != 600*time.Millisecond {
		t.Fatalf("step at +500ms: nudge %v next %v, want false 600ms", nudge, next)
	}
	if nudge, _ := c.step(t0.Add(1099*time.Millisecond), raft.Follower, t0); nudge {
		t.Fatal("nudged before the deadline")
	}
	if nudge, _ := c.step(t0.Add(1100*time.Millisecond), raft.Follower, t0); !nudge {
		t.Fatal("no nudge at the deadline")
	}
	// Once per silence: raft decides from there.
	if nudge, _ := c.step(t0.Add(1500*time.Millisecond), raft.Follower, t0); nudge {
		t.Fatal("nudged twice for one silence")
	}

	// A new contact draws a new deadline (jitter 200 ms now).
	t1 := t0.Add(2 * time.Second)
	if nudge, _ := c.step(t1.Add(1100*time.Millisecond), raft.Follower, t1); nudge {
		t.Fatal("nudged before the new deadline")
	}
	if nudge, _ := c.step(t1.Add(1200*time.Millisecond), raft.Follower, t1); !nudge {
		t.Fatal("no nudge at the new deadline")
	}
	if len(drawn) != 2 {
		t.Fatalf("drew %d deadlines, want 2", len(drawn))
	}
	// The deadline is never before one election timeout: the floor holds
	// whatever the jitter.
	c.jitter = func(time.Duration) time.Duration { return 0 }
	t2 := t1.Add(time.Hour)
	if nudge, _ := c.step(t2.Add(timeout-time.Nanosecond), raft.Follower, t2); nudge {
		t.Fatal("nudged before one election timeout of silence")
	}
}
