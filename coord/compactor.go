package coord

import (
	"context"
	"errors"
	"time"

	"github.com/coordhq/coord/kvstore"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// CompactionMode says how AutoCompactionRetention is read, as etcd's
// --auto-compaction-mode.
type CompactionMode string

const (
	// CompactPeriodic keeps the history of the last retention period.
	CompactPeriodic CompactionMode = "periodic"
	// CompactRevision keeps the last retention revisions.
	CompactRevision CompactionMode = "revision"
)

// compactPolicy decides, from samples of the revision over time, which
// revision to compact to. It reads no clock: the caller passes the time.
type compactPolicy struct {
	mode      CompactionMode
	period    time.Duration // periodic: history to keep
	revisions int64         // revision: revisions to keep
	samples   []revSample   // periodic: oldest first
	last      int64         // last revision compacted to
}

type revSample struct {
	at  time.Time
	rev int64
}

// interval is how often the policy wants to be asked: every tenth of the
// period (at least a second), as etcd does, or every five minutes in
// revision mode.
func (p *compactPolicy) interval() time.Duration {
	if p.mode == CompactRevision {
		return 5 * time.Minute
	}
	return max(p.period/10, time.Second)
}

// next records the current revision at now and returns the revision to
// compact to, if there is a new one.
func (p *compactPolicy) next(now time.Time, rev int64) (int64, bool) {
	var target int64
	switch p.mode {
	case CompactRevision:
		target = rev - p.revisions
	default:
		p.samples = append(p.samples, revSample{now, rev})
		// The newest sample at least a period old is what to keep from.
		keep := -1
		for i, s := range p.samples {
			if now.Sub(s.at) >= p.period {
				keep = i
			}
		}
		if keep < 0 {
			return 0, false
		}
		target = p.samples[keep].rev
		p.samples = p.samples[keep:]
	}
	if target <= p.last || target <= 0 {
		return 0, false
	}
	p.last = target
	return target, true
}

// compactLoop runs the auto-compaction policy on the leader.
func (s *Server) compactLoop(p *compactPolicy) {
	t := time.NewTicker(s.cfg.autoCompactionInterval(p))
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case now := <-t.C:
			if !s.IsLeader() {
				continue
			}
			rev, ok := p.next(now, s.store.Rev())
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
			_, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
			cancel()
			switch {
			case err == nil:
				s.log.Info("auto-compacted", "revision", rev)
			case errors.Is(err, kvstore.ErrCompacted):
				// Someone compacted further already.
			default:
				s.log.Warn("auto-compaction failed; will retry", "revision", rev, "err", err)
				p.last = 0
			}
		}
	}
}
