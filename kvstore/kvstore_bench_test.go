package kvstore

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

var benchValue = bytes.Repeat([]byte("v"), 256)

func benchKey(i int) []byte { return []byte(fmt.Sprintf("/registry/key/%08d", i)) }

// filled returns a store with n keys of 256-byte values.
func filled(b *testing.B, n int) *Store {
	b.Helper()
	s := New(Config{})
	for i := range n {
		// A fresh value per key, as the server decodes each from the log.
		v := append([]byte(nil), benchValue...)
		if _, err := s.Put(&pb.PutRequest{Key: benchKey(i), Value: v}); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkPut overwrites 10,000 keys in turn with 256-byte values. Keys
// are built before the clock starts: the request is what the FSM would
// decode from the log.
func BenchmarkPut(b *testing.B) {
	const n = 10_000
	s := filled(b, n)
	reqs := make([]*pb.PutRequest, n)
	for i := range reqs {
		reqs[i] = &pb.PutRequest{Key: benchKey(i), Value: benchValue}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(reqs[i%n]); err != nil {
			b.Fatal(err)
		}
		if i%50_000 == 49_999 { // keep history bounded, as a server would
			b.StopTimer()
			if err := s.Compact(s.Rev()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}

func BenchmarkGet(b *testing.B) {
	const n = 100_000
	s := filled(b, n)
	reqs := make([]*pb.RangeRequest, 1024)
	for i := range reqs {
		reqs[i] = &pb.RangeRequest{Key: benchKey(i * 97 % n)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		resp, err := s.Range(reqs[i%len(reqs)])
		if err != nil || len(resp.Kvs) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangePrefix100(b *testing.B) {
	s := filled(b, 100_000)
	r := &pb.RangeRequest{Key: []byte("/registry/key/000123"), RangeEnd: []byte("/registry/key/000124")}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := s.Range(r)
		if err != nil || len(resp.Kvs) != 100 {
			b.Fatalf("%v %d", err, len(resp.GetKvs()))
		}
	}
}

// BenchmarkTxn is a compare-and-put on one of 10,000 keys: the shape of a
// lock or semaphore acquire.
func BenchmarkTxn(b *testing.B) {
	const n = 10_000
	s := filled(b, n)
	reqs := make([]*pb.TxnRequest, n)
	for i := range reqs {
		k := benchKey(i)
		reqs[i] = &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: k, Target: pb.Compare_VERSION, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_Version{Version: 0}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: benchValue}}}},
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		resp, err := s.Txn(reqs[i%n])
		if err != nil || !resp.Succeeded {
			b.Fatal(err)
		}
		if i%50_000 == 49_999 {
			b.StopTimer()
			if err := s.Compact(s.Rev()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}

// BenchmarkWatchFanout measures one put delivered to 10,000 watchers of its
// key (100 streams of 100 watchers), including reading every stream.
func BenchmarkWatchFanout(b *testing.B) {
	s := New(Config{})
	streams := make([]*WatchStream, 100)
	for i := range streams {
		streams[i] = s.NewWatchStream()
		defer streams[i].Close()
		for range 100 {
			if _, err := streams[i].Watch(&pb.WatchCreateRequest{Key: []byte("hot")}); err != nil {
				b.Fatal(err)
			}
		}
	}
	r := &pb.PutRequest{Key: []byte("hot"), Value: benchValue}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Put(r); err != nil {
			b.Fatal(err)
		}
		got := 0
		for _, ws := range streams {
			rs, err := ws.Next()
			if err != nil {
				b.Fatal(err)
			}
			got += len(rs)
		}
		if got != 10_000 {
			b.Fatalf("delivered %d", got)
		}
	}
}

func BenchmarkSnapshotEncode1M(b *testing.B) {
	s := filled(b, 1_000_000)
	b.ResetTimer()
	for b.Loop() {
		var w countingWriter
		if _, err := s.Snapshot().WriteTo(&w); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(w))
	}
}

func BenchmarkSnapshotRestore1M(b *testing.B) {
	s := filled(b, 1_000_000)
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	s = nil // a server restoring drops its old state first
	runtime.GC()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r := New(Config{})
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
	}
}

// BenchmarkMemoryPerKey reports the heap each live key takes beyond its key
// and value bytes, with 1M keys written once.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		reportHeapPerKey(b, n, func() *Store { return filled(b, n) })
	}
}

// reportHeapPerKey reports the heap that the store build returns takes per
// key, beyond the n keys' key and value bytes.
func reportHeapPerKey(b *testing.B, n int, build func() *Store) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	payload := len(benchKey(0)) + len(benchValue)
	perKey := float64(after.HeapAlloc-before.HeapAlloc)/float64(n) - float64(payload)
	b.ReportMetric(perKey, "overhead-bytes/key")
	runtime.KeepAlive(s)
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkMemoryPerKeyRestored reports the heap each live key takes beyond
// its key and value bytes in a store restored from a snapshot of 1M keys.
func BenchmarkMemoryPerKeyRestored(b *testing.B) {
	const n = 1_000_000
	var buf bytes.Buffer
	if _, err := filled(b, n).Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		reportHeapPerKey(b, n, func() *Store {
			s := New(Config{})
			if err := s.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
			return s
		})
	}
}

// BenchmarkValidateTxn100 validates a txn of 100 puts, the shape of a bulk
// load's entries; the FSM validates every txn it applies.
func BenchmarkValidateTxn100(b *testing.B) {
	r := &pb.TxnRequest{}
	for i := range 100 {
		r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: benchKey(i), Value: benchValue}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateTxn(r, 128); err != nil {
			b.Fatal(err)
		}
	}
}
