package election

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// transient reports whether err is a failure of the moment (no raft
// leader, a lost connection, a request timing out on the server) after
// which the same request may succeed, rather than an answer.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's context ended: the caller decides
	}
	if errors.Is(err, ErrSessionLost) || errors.Is(err, ErrBadName) || errors.Is(err, ErrNotLeader) {
		return false
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code() // clientv3 turns etcd's statuses into EtcdError
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return true // not an answer from the server: a transport failure
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Unknown, codes.Internal:
		return true
	}
	return false // not found, invalid argument, permission, no space: retrying changes nothing
}

// leaseGone reports whether err says the session's lease does not exist.
func leaseGone(err error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseNotFound)
}

// backoff spaces retries: 50 ms, doubling up to 2 s.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 50*time.Millisecond), 2*time.Second)
	return b.d
}

// wait waits for the next retry. It returns ctx's error if ctx ends first,
// and ErrSessionLost if lost closes first.
func (b *backoff) wait(ctx context.Context, lost <-chan struct{}) error {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return ErrSessionLost
	case <-t.C:
		return nil
	}
}
