package election

import (
	"context"
	"errors"

	"github.com/coordhq/coord/internal/retry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// transient reports whether err is a failure of the moment after which
// the same request may succeed (see retry.Transient).
func transient(err error) bool {
	if errors.Is(err, ErrSessionLost) || errors.Is(err, ErrBadName) || errors.Is(err, ErrNotLeader) {
		return false
	}
	return retry.Transient(err)
}

// leaseGone reports whether err says the session's lease does not exist.
func leaseGone(err error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseNotFound)
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
