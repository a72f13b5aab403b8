package semaphore

import (
	"context"
	"errors"

	"github.com/coordhq/coord/internal/retry"
)

// retryable reports whether err may go away by itself (a leader change, a
// lost connection, a timeout of one request) rather than being an answer.
func retryable(err error) bool {
	if errors.Is(err, ErrBadLimit) || errors.Is(err, ErrBadName) || errors.Is(err, ErrSessionLost) || errors.Is(err, errBadRecord) {
		return false
	}
	return retry.Transient(err)
}

// backoff spaces retries (see retry.Backoff); a lost session ends the wait
// with ErrSessionLost.
type backoff struct{ retry.Backoff }

func (b *backoff) reset() { b.Reset() }

func (b *backoff) wait(ctx context.Context, lost <-chan struct{}) error {
	if err := b.Wait(ctx, lost); errors.Is(err, retry.ErrLost) {
		return ErrSessionLost
	} else {
		return err
	}
}
