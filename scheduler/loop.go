package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Clock is the scheduler's time: real in production, driven by tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// HistoryKept is how many finished runs of a job are kept.
const HistoryKept = 20

// ElectionName is the election scheduler candidates campaign in.
const ElectionName = "scheduler"

// Scheduler fires the jobs' runs while it leads the scheduler election;
// candidates that do not lead wait. Fire makes each run exactly once, so
// two schedulers that overlap in a failover cannot double a run.
type Scheduler struct {
	Client *clientv3.Client
	// ID is the candidate's value in the election (an address, a host).
	ID    string
	Clock Clock // default: the real clock
	Log   *slog.Logger
	// MaxWait bounds a pause between passes (default 1 minute), so that a
	// missed watch event delays a job by at most this long.
	MaxWait time.Duration
}

// Run campaigns and, while leading, fires runs until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	s.defaults()
	err := election.Run(ctx, s.Client, ElectionName, s.ID, func(lctx context.Context) error {
		s.Log.Info("scheduling", "scheduler", s.ID)
		s.lead(lctx)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Scheduler) defaults() {
	if s.Clock == nil {
		s.Clock = realClock{}
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.MaxWait <= 0 {
		s.MaxWait = time.Minute
	}
}

// lead passes over the jobs until ctx ends (leadership lost or stopped).
func (s *Scheduler) lead(ctx context.Context) {
	for ctx.Err() == nil {
		wait, rev, err := s.Pass(ctx)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("scheduler pass failed; will retry", "err", err)
			wait = min(wait, time.Second)
		}
		s.waitJobs(ctx, rev, wait)
	}
}

// Pass fires the due runs of every job once, at the clock's now, and
// returns how long until the earliest next tick (at most MaxWait) and the
// revision of the job list it read.
func (s *Scheduler) Pass(ctx context.Context) (time.Duration, int64, error) {
	s.defaults()
	resp, err := s.Client.Get(ctx, Prefix+"jobs/", clientv3.WithPrefix())
	if err != nil {
		return s.MaxWait, 0, err
	}
	jobs, err := decodeJobs(resp.Kvs)
	if err != nil {
		return s.MaxWait, resp.Header.Revision, err
	}
	now := s.Clock.Now()
	wait := s.MaxWait
	for i := range jobs {
		runs, next, err := Fire(ctx, s.Client, &jobs[i], now)
		if err != nil {
			return min(wait, time.Second), resp.Header.Revision, err
		}
		for _, r := range runs {
			s.Log.Info("run created", "job", r.Job, "scheduled", r.Scheduled)
		}
		if n, err := requeueOrphans(ctx, s.Client, jobs[i].Name, now); err != nil {
			return min(wait, time.Second), resp.Header.Revision, err
		} else if n > 0 {
			s.Log.Info("runs re-queued: their worker is gone", "job", jobs[i].Name, "runs", n)
		}
		if err := trimHistory(ctx, s.Client, jobs[i].Name, HistoryKept); err != nil {
			return min(wait, time.Second), resp.Header.Revision, err
		}
		wait = min(wait, next.Sub(now))
	}
	return max(wait, 0), resp.Header.Revision, nil
}

// waitJobs waits d on the clock, or less if a job changes after rev.
func (s *Scheduler) waitJobs(ctx context.Context, rev int64, d time.Duration) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	wch := s.Client.Watch(wctx, Prefix+"jobs/", opts...)
	select {
	case <-ctx.Done():
	case <-s.Clock.After(d):
	case <-wch:
	}
}
