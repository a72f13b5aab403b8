package semaphore

import (
	"context"
	"errors"
	"time"

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
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Unknown, codes.Internal:
			return true
		case codes.Canceled:
			return false
		}
		return false // InvalidArgument, NOSPACE, permission: retrying changes nothing
	}
	return true
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
