package semaphore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The etcd client hands server errors over as rpctypes.EtcdError: those
// that retrying cannot cure must not be retried forever.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrLeaderChanged, true},
		{rpctypes.ErrTimeout, true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{errors.New("transport is closing"), true},
		{rpctypes.ErrPermissionDenied, false},
		{rpctypes.ErrNoSpace, false},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrLeaseTTLTooLarge, false},
		{rpctypes.ErrRequestTooLarge, false},
		{context.Canceled, false},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), false},
		{ErrSessionLost, false},
		{ErrBadLimit, false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
