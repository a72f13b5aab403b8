package gcpace

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	p := Policy{Headroom: 0.25, MinHeadroom: 64 << 20, MaxPercent: 100}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 25},         // nothing measured yet: the fraction alone
		{16 << 20, 100}, // small heap: capped at Go's default
		{64 << 20, 100}, // 64 MiB of room is 100% here
		{128 << 20, 50}, // still the 64 MiB floor
		{256 << 20, 25}, // from here on the fraction
		{1 << 30, 25},
	} {
		if got := p.Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// TestStart checks that the policy is applied after a collection.
func TestStart(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	Start(Policy{Headroom: 0.37, MinHeadroom: 1, MaxPercent: 100})
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		runtime.GC()
		// Reading the percent means setting it; put back what was read.
		got := debug.SetGCPercent(-1)
		debug.SetGCPercent(got)
		if got == 37 {
			return
		}
		if time.Now().After(deadline) || i == 1000 {
			t.Fatalf("GC percent %d after %d collections, want 37", got, i+1)
		}
		time.Sleep(time.Millisecond) // let the finalizer goroutine run
	}
}
