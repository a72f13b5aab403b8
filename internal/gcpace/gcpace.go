// Package gcpace sets the Go garbage collector's pace for a server whose
// heap is mostly long-lived data: the key-value store of a coordd member.
//
// Go's default (GOGC=100) lets the heap grow to twice the live data before
// the next collection. For a small store that is little memory, and
// collecting more rarely would buy back CPU; for a store of a million keys
// it is hundreds of megabytes of garbage held for nothing. gcpace keeps the
// room for garbage between the two: Headroom of the live heap, but never
// less than MinHeadroom bytes. After every collection it reads the live
// heap and sets the GC percent to match.
package gcpace

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Policy is the room a collection leaves for new allocation.
type Policy struct {
	// Headroom is the fraction of the live heap that may be allocated
	// before the next collection (GOGC/100).
	Headroom float64
	// MinHeadroom is the least room, in bytes, whatever the live heap.
	MinHeadroom uint64
	// MaxPercent caps the GC percent that MinHeadroom gives a tiny heap.
	MaxPercent int
}

// Percent is the GC percent the policy asks for with live bytes of live
// heap.
func (p Policy) Percent(live uint64) int {
	pct := 100 * p.Headroom
	if live > 0 {
		pct = math.Max(pct, 100*float64(p.MinHeadroom)/float64(live))
	}
	return min(int(math.Round(pct)), p.MaxPercent)
}

var once sync.Once

// Start applies p after every garbage collection from now on, for the rest
// of the process. Only the first call counts. The caller decides whether to
// call it: coordd does not when GOGC is set, as an operator's explicit
// choice wins.
func Start(p Policy) {
	once.Do(func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		last := -1
		var rearm func()
		rearm = func() {
			// The finalizer runs after the collection that found the
			// sentinel unreachable: once per cycle.
			sentinel := new([32]byte) // not a tiny allocation, which may share a finalizer's fate with others
			runtime.SetFinalizer(sentinel, func(*[32]byte) {
				metrics.Read(sample)
				if sample[0].Value.Kind() == metrics.KindUint64 {
					if pct := p.Percent(sample[0].Value.Uint64()); pct != last {
						debug.SetGCPercent(pct)
						last = pct
					}
				}
				rearm()
			})
		}
		rearm()
	})
}
