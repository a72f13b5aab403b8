package scheduler

import (
	"time"

	"github.com/robfig/cron/v3"
)

// maxTicksPerPass bounds the ticks one pass keeps: a job every second and
// a day without a scheduler is 86,400 ticks, of which the oldest are only
// counted.
const maxTicksPerPass = 1000

// Ticks is what a pass over one job decides.
type Ticks struct {
	Fire   []time.Time // scheduled times to start now (late ones within the deadline)
	Missed []time.Time // scheduled times recorded as missed
	// Skipped counts missed ticks beyond those listed (too many to record).
	Skipped int
	// Next is the first scheduled time after now: where the next pass starts.
	Next time.Time
}

// maxMissedRecorded bounds the missed runs recorded per pass.
const maxMissedRecorded = 100

// Due decides what to do with the ticks of sched from next (the first
// scheduled time not yet handled) up to now. A tick more than deadline late
// is missed; with deadline 0, every past tick but the newest is missed and
// the newest runs however late (Kubernetes CronJob's behaviour without a
// starting deadline). It reads no clock: now is given.
func Due(sched cron.Schedule, next, now time.Time, deadline time.Duration) Ticks {
	// Keep the newest maxTicksPerPass due ticks (the ones that may still
	// run); older ones beyond that are only counted.
	var ring [maxTicksPerPass]time.Time
	total := 0
	t := next
	for !t.After(now) {
		ring[total%maxTicksPerPass] = t
		total++
		t = sched.Next(t)
	}
	kept := min(total, maxTicksPerPass)
	skipped := total - kept
	due := make([]time.Time, 0, kept)
	for i := total - kept; i < total; i++ {
		due = append(due, ring[i%maxTicksPerPass])
	}
	out := Ticks{Next: t, Skipped: skipped}
	for i, d := range due {
		late := now.Sub(d)
		switch {
		case deadline > 0 && late <= deadline:
			out.Fire = append(out.Fire, d)
		case deadline == 0 && i == len(due)-1 && skipped == 0:
			out.Fire = append(out.Fire, d)
		default:
			out.Missed = append(out.Missed, d)
		}
	}
	if len(out.Missed) > maxMissedRecorded {
		out.Skipped += len(out.Missed) - maxMissedRecorded
		out.Missed = out.Missed[len(out.Missed)-maxMissedRecorded:]
	}
	return out
}
