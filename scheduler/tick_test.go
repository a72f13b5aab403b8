package scheduler_test

import (
	"testing"
	"time"

	"github.com/coordhq/coord/scheduler"
)

func at(sec int) time.Time { return time.Date(2026, 11, 25, 12, 0, sec, 0, time.UTC) }

func TestDue(t *testing.T) {
	every10, err := scheduler.ParseSchedule("@every 10s")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		next, now    time.Time
		deadline     time.Duration
		fire, missed []time.Time
		nextWant     time.Time
	}{
		{"nothing due", at(10), at(5), 0, nil, nil, at(10)},
		{"on time", at(10), at(10), 0, []time.Time{at(10)}, nil, at(20)},
		{"late, no deadline: only the newest runs", at(0), at(35), 0, []time.Time{at(30)}, []time.Time{at(0), at(10), at(20)}, at(40)},
		{"late within the deadline", at(0), at(35), 15 * time.Second, []time.Time{at(20), at(30)}, []time.Time{at(0), at(10)}, at(40)},
		{"all beyond the deadline", at(0), at(59), 5 * time.Second, nil, []time.Time{at(0), at(10), at(20), at(30), at(40), at(50)}, at(60)},
	} {
		got := scheduler.Due(every10, c.next, c.now, c.deadline)
		if !equal(got.Fire, c.fire) || !equal(got.Missed, c.missed) || !got.Next.Equal(c.nextWant) || got.Skipped != 0 {
			t.Errorf("%s: fire %v missed %v next %v skipped %d; want fire %v missed %v next %v",
				c.name, got.Fire, got.Missed, got.Next, got.Skipped, c.fire, c.missed, c.nextWant)
		}
	}
	// A day of a job every second without a scheduler: bounded work, the
	// overflow counted, never lost.
	everySec, _ := scheduler.ParseSchedule("* * * * * *")
	got := scheduler.Due(everySec, at(0), at(0).Add(24*time.Hour), time.Minute)
	// The last minute's 61 ticks run; 100 missed are recorded, the rest counted.
	if len(got.Fire) != 61 || len(got.Missed) != 100 || got.Skipped != 86401-61-100 || !got.Next.Equal(at(1).Add(24*time.Hour)) {
		t.Errorf("a day of seconds: fire %d missed %d skipped %d next %v", len(got.Fire), len(got.Missed), got.Skipped, got.Next)
	}
}

func equal(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
