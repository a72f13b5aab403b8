package election

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Run is the loop of a process that must lead to work: it campaigns in
// election name with value and, each time it is elected, calls fn with a
// context that is cancelled the moment the leadership is lost or ctx ends.
// In fn, FromContext returns the leadership, for its token and Cmp.
//
// Run makes its own session, with the TTL of WithTTL, and a new one
// whenever the lease of the last one is lost. What happens when fn
// returns:
//
//   - ctx has ended: Run resigns and returns ctx.Err().
//   - The leadership was lost before fn returned: fn's result is taken as
//     a consequence of the loss and dropped; Run campaigns again.
//   - fn returned nil: Run resigns and campaigns again, behind the
//     candidates already waiting (so a fn that returns at once hands the
//     leadership around, or runs again at once if nobody else waits).
//   - fn returned an error: Run resigns and returns that error.
//
// Run also returns ctx.Err() when ctx ends while it campaigns, and an
// error that retrying cannot cure (a bad name, a refused request);
// failures of the moment are retried. Before it returns, Run resigns and
// revokes its session's lease, waiting at most the TTL for the cluster.
func Run(ctx context.Context, cli *clientv3.Client, name, value string, fn func(ctx context.Context) error, opts ...Option) error {
	o := buildOptions(opts)
	pfx, err := o.prefix(name)
	if err != nil {
		return err
	}
	if o.ttl <= 0 {
		return fmt.Errorf("election: TTL %d is not positive", o.ttl)
	}
	if fn == nil {
		return errors.New("election: Run needs a function")
	}
	r := &runner{cli: cli, pfx: pfx, ttl: time.Duration(o.ttl) * time.Second, value: value, fn: fn}
	return r.loop(ctx)
}

// runner is the state of one Run; only its goroutine uses it.
type runner struct {
	cli   *clientv3.Client
	pfx   string
	ttl   time.Duration
	value string
	fn    func(context.Context) error

	e *Election // on the current session; nil when there is none
}

func (r *runner) loop(ctx context.Context) error {
	var held *Leadership // when Run returns
	defer func() {
		// One deadline for the cleanup: after the TTL the lease, and the
		// key with it, is gone anyway.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.ttl)
		defer cancel()
		if held != nil {
			r.resign(cctx, held)
		}
		r.closeSession(cctx)
	}()
	for {
		if r.e == nil {
			if err := r.openSession(ctx); err != nil {
				return err
			}
		}
		l, err := r.e.Campaign(ctx, r.value)
		switch {
		case ctx.Err() != nil:
			held = l // elected just as ctx ended, or nil
			return ctx.Err()
		case errors.Is(err, ErrSessionLost):
			cctx, cancel := context.WithTimeout(ctx, r.ttl)
			r.closeSession(cctx)
			cancel()
			continue
		case err != nil:
			return err
		}
		lost, err := r.lead(ctx, l)
		switch {
		case ctx.Err() != nil:
			held = l
			return ctx.Err()
		case lost:
			l.stop() // the key is gone, or goes with the session Campaign will find lost
		case err != nil:
			held = l
			return err
		default:
			r.resign(ctx, l)
		}
	}
}

// lead runs fn under the leadership l and reports whether l was lost by
// the time fn returned.
func (r *runner) lead(ctx context.Context, l *Leadership) (lost bool, err error) {
	fctx, cancel := context.WithCancel(context.WithValue(ctx, leadershipKey{}, l))
	stop := context.AfterFunc(l.Context(), cancel)
	err = r.fn(fctx)
	stop()
	cancel()
	return l.Context().Err() != nil, err
}

// resign resigns l, retrying failures of the moment while ctx lasts and
// the session lives (once it is lost, so is the key).
func (r *runner) resign(ctx context.Context, l *Leadership) {
	for b := (backoff{}); ; {
		err := l.Resign(ctx)
		if err == nil || !transient(err) || b.wait(ctx, r.e.session.Done()) != nil {
			return
		}
	}
}

// openSession grants a lease with the TTL and starts a session on it,
// retrying failures of the moment until ctx ends.
func (r *runner) openSession(ctx context.Context) error {
	for b := (backoff{}); ; {
		lease, err := r.cli.Grant(ctx, int64(r.ttl/time.Second))
		if err == nil {
			var s *concurrency.Session
			s, err = concurrency.NewSession(r.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(r.ttl/time.Second)))
			if err == nil {
				r.e = &Election{cli: r.cli, session: s, pfx: r.pfx}
				return nil
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.ttl)
			_, _ = r.cli.Revoke(cctx, lease.ID)
			cancel()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !transient(err) {
			return err
		}
		if err := b.wait(ctx, nil); err != nil {
			return err
		}
	}
}

// closeSession stops the session's keep-alives and revokes its lease
// while ctx lasts, which deletes a candidate key left behind.
func (r *runner) closeSession(ctx context.Context) {
	if r.e == nil {
		return
	}
	s := r.e.session
	r.e = nil
	s.Orphan()
	_, _ = r.cli.Revoke(ctx, s.Lease())
}
