package coord

import (
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// testLeaderLease returns a lease of a one-second election timeout that
// reads the time from the fakeClock it returns with it.
func testLeaderLease() (*leaderLease, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLeaderLease(time.Second)
	l.now = clk.now
	return l, clk
}

func TestLeaderLeaseWindow(t *testing.T) {
	l, clk := testLeaderLease()
	if _, ok := l.age(3); ok {
		t.Fatal("a lease before any confirmation")
	}
	c := l.begin(3)
	clk.t = clk.t.Add(10 * time.Millisecond) // the round trip
	l.confirmed(c)
	if age, ok := l.age(3); !ok || age != 10*time.Millisecond {
		t.Fatalf("right after the confirmation: age %v ok %v", age, ok)
	}
	if _, ok := l.age(4); ok {
		t.Fatal("a confirmation in term 3 gave a lease in term 4")
	}
	clk.t = c.began.Add(l.window - time.Nanosecond)
	if _, ok := l.age(3); !ok {
		t.Fatal("no lease just before the window ends")
	}
	clk.t = c.began.Add(l.window)
	if _, ok := l.age(3); ok {
		t.Fatal("a lease once the window, counted from the confirmation's start, ended")
	}

	// An older confirmation that succeeds later does not move it back.
	newer := l.begin(3)
	older := c
	l.confirmed(newer)
	l.confirmed(older)
	if got := l.last.Load(); !got.began.Equal(newer.began) {
		t.Fatalf("lease rests on the confirmation begun at %v, want %v", got.began, newer.began)
	}
	if _, ok := l.age(3); !ok {
		t.Fatal("no lease right after a new confirmation")
	}
	l.forget()
	if _, ok := l.age(3); ok {
		t.Fatal("a lease after leadership was lost")
	}
}

// A configuration change voids confirmations that began before it ended.
func TestLeaderLeaseConfigChange(t *testing.T) {
	l, _ := testLeaderLease()
	l.confirmed(l.begin(3))
	done := l.changing()
	if _, ok := l.age(3); ok {
		t.Fatal("a lease while the configuration changes")
	}
	during := l.begin(3)
	l.confirmed(during)
	done()
	if _, ok := l.age(3); ok {
		t.Fatal("a confirmation begun during the change gave a lease after it")
	}
	l.confirmed(l.begin(3))
	if _, ok := l.age(3); !ok {
		t.Fatal("no lease from a confirmation begun after the change")
	}
}

// A leadership transfer voids the lease while it runs and for
// leaseHoldAfterTransfer election timeouts after it.
func TestLeaderLeaseTransfer(t *testing.T) {
	l, clk := testLeaderLease()
	l.confirmed(l.begin(3))
	done := l.transferring(time.Second)
	l.confirmed(l.begin(3))
	if _, ok := l.age(3); ok {
		t.Fatal("a lease while a transfer runs")
	}
	done()
	end := clk.t
	l.confirmed(l.begin(3))
	clk.t = end.Add(leaseHoldAfterTransfer*time.Second - time.Nanosecond)
	l.confirmed(l.begin(3))
	if _, ok := l.age(3); ok {
		t.Fatal("a lease within the hold after a transfer")
	}
	clk.t = end.Add(leaseHoldAfterTransfer * time.Second)
	l.confirmed(l.begin(3))
	if _, ok := l.age(3); !ok {
		t.Fatal("no lease once the hold after a transfer passed")
	}
}
