package coordtest

import (
	"context"
	"time"

	"go.uber.org/zap"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func nopLogger() *zap.Logger { return zap.NewNop() }
