package semaphore

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retryable reports whether err may go away by itself (a leader change, a
// lost connection, a timeout of one request) rather than being an answer.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's context: the caller decides
	}
	if errors.Is(err, ErrBadLimit) || errors.Is(err, ErrBadName) || errors.Is(err, ErrSessionLost) || errors.Is(err, errBadRecord) {
		return false
	}
	// The etcd client turns the server's errors into rpctypes.EtcdError,
	// which carries the gRPC code; others are gRPC statuses.
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return true // a connection-level error without a code
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Unknown, codes.Internal:
		return true
	}
	// InvalidArgument, NOSPACE (ResourceExhausted), permission, a lease that
	// is gone (NotFound), too large: retrying changes nothing.
	return false
}

// backoff waits between retries: 50 ms, doubling up to 2 s.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) wait(ctx context.Context, lost <-chan struct{}) error {
	b.d = min(max(2*b.d, 50*time.Millisecond), 2*time.Second)
	t := time.NewTimer(b.d)
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
