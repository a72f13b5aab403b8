package coord

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestFollowerReadsBatch: reads waiting together share one call to the
// leader, and a read that arrives while a call is in flight is answered by
// the next call, never by the one that was already out.
func TestFollowerReadsBatch(t *testing.T) {
	s := &Server{stopc: make(chan struct{})}
	fr := newFollowerReads(s)
	calls := make(chan chan revisionResult)
	fr.fetch = func() revisionResult {
		reply := make(chan revisionResult)
		calls <- reply
		return <-reply
	}
	var wg sync.WaitGroup
	defer func() { close(s.stopc); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); fr.run() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(out chan<- int64) {
		defer wg.Done()
		res, err := fr.revision(ctx)
		if err != nil {
			t.Error(err)
		}
		out <- res.rev
	}
	first := make(chan int64, 1)
	wg.Add(1)
	go read(first)
	var inFlight chan revisionResult
	select {
	case inFlight = <-calls:
	case <-ctx.Done():
		t.Fatal("no call for the first read")
	}

	// Ten reads arrive while the first call is out.
	later := make(chan int64, 10)
	for range 10 {
		wg.Add(1)
		go read(later)
	}
	for i := 0; ; i++ {
		if n := fr.reads.pending(); n == 10 {
			break
		}
		if i == 10000 || ctx.Err() != nil {
			t.Fatalf("%d reads waiting, want 10", fr.reads.pending())
		}
		time.Sleep(time.Millisecond)
	}
	inFlight <- revisionResult{rev: 5}
	if got := <-first; got != 5 {
		t.Fatalf("first read got revision %d, want 5", got)
	}
	select {
	case second := <-calls:
		second <- revisionResult{rev: 7}
	case <-ctx.Done():
		t.Fatal("no second call")
	}
	for range 10 {
		if got := <-later; got != 7 {
			t.Fatalf("a read that began during the first call got revision %d, want 7", got)
		}
	}
	select {
	case <-calls:
		t.Fatal("a third call for reads that were all answered")
	default:
	}
}
