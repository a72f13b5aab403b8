package coord

import (
	"context"
	"sync"
)

// batch gathers the callers of some shared work (one leadership
// confirmation, one call to the leader) into rounds: every caller waiting
// when a round starts gets that round's result, and one that arrives while
// a round is under way waits for the next. The result a caller gets was
// therefore produced after the caller began, which is what linearizable
// reads need.
type batch[T any] struct {
	mu      sync.Mutex
	waiting []chan T
	kick    chan struct{} // has a value when waiting is not empty
}

func newBatch[T any]() *batch[T] { return &batch[T]{kick: make(chan struct{}, 1)} }

// join waits for the result of the next round.
func (b *batch[T]) join(ctx context.Context, stopc <-chan struct{}) (T, error) {
	ch := make(chan T, 1)
	b.mu.Lock()
	b.waiting = append(b.waiting, ch)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	var zero T
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-stopc:
		return zero, ErrStopped
	}
}

// rounds runs work once for every round, until stopc is closed, and hands
// each result to the callers of its round. Sends never block: every
// caller's channel has room for its one result.
func (b *batch[T]) rounds(stopc <-chan struct{}, work func() T) {
	for {
		select {
		case <-stopc:
			return
		case <-b.kick:
		}
		b.mu.Lock()
		callers := b.waiting
		b.waiting = nil
		b.mu.Unlock()
		if len(callers) == 0 {
			continue // a kick left over from callers an earlier round served
		}
		res := work()
		for _, ch := range callers {
			ch <- res
		}
	}
}

// pending is the number of callers waiting for the next round.
func (b *batch[T]) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}
