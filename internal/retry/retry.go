// Package retry classifies the errors of etcd requests and spaces retries,
// for the primitives' loops that repeat a step after a failure of the
// moment.
package retry

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrLost is returned by Backoff.Wait when its lost channel closes first.
var ErrLost = errors.New("retry: lost")

// Transient reports whether err is a failure of the moment (no raft
// leader, a lost connection, a request timing out on the server) after
// which the same request may succeed, rather than an answer. The caller's
// own context ending is not transient: the caller decides.
func Transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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

// Backoff spaces retries: 50 ms, doubling up to 2 s. The zero value is ready.
type Backoff struct{ d time.Duration }

// Reset starts the spacing again from 50 ms.
func (b *Backoff) Reset() { b.d = 0 }

// Next returns the pause before the next retry, for callers that wait in
// their own select.
func (b *Backoff) Next() time.Duration {
	b.d = min(max(2*b.d, 50*time.Millisecond), 2*time.Second)
	return b.d
}

// Wait waits for the next retry. It returns ctx's error if ctx ends first,
// and ErrLost if lost closes first.
func (b *Backoff) Wait(ctx context.Context, lost <-chan struct{}) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return ErrLost
	case <-t.C:
		return nil
	}
}
