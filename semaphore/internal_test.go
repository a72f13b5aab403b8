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

// A waiter whose watch saw a change just as its context ended stops with
// the context's error: Acquire never returns no grant and no error.
func TestAfterWait(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	other := errors.New("watch failed")
	for _, c := range []struct {
		name     string
		ctx      context.Context
		err      error
		wantDone bool
		wantErr  error
	}{
		{"change seen", live, nil, false, nil},
		{"watch error, read again", live, other, false, other},
		{"session lost", live, ErrSessionLost, true, ErrSessionLost},
		{"session lost as ctx ended", ended, ErrSessionLost, true, ErrSessionLost},
		{"change seen as ctx ended", ended, nil, true, context.Canceled},
		{"ctx ended", ended, context.Canceled, true, context.Canceled},
	} {
		done, err := afterWait(c.ctx, c.err)
		if done != c.wantDone || !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
			t.Errorf("%s: done %v, err %v; want %v, %v", c.name, done, err, c.wantDone, c.wantErr)
		}
		if done && err == nil {
			t.Errorf("%s: done with no error: Acquire would return no grant and no error", c.name)
		}
	}
}
