package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func validManifest(seq int64, data []byte, chunkSize int) []byte {
	sum := sha256.Sum256(data)
	b, _ := json.Marshal(&manifest{
		Version: manifestVersion, Seq: seq, Size: int64(len(data)),
		Chunks: chunkCount(int64(len(data)), chunkSize), ChunkSize: chunkSize,
		SHA256: hex.EncodeToString(sum[:]), Created: time.Unix(1, 0).UTC(),
		Meta: map[string]string{"k": "v"},
	})
	return b
}

// FuzzParseManifest: parseManifest never panics, and a manifest it
// accepts describes chunks Load can check without overflow: their lengths
// are in [0, ChunkSize] and add up to Size.
func FuzzParseManifest(f *testing.F) {
	f.Add(int64(1), validManifest(1, nil, 1))
	f.Add(int64(7), validManifest(7, make([]byte, 1000), 64))
	f.Add(int64(7), validManifest(7, make([]byte, 1024), 64))
	f.Add(int64(2), []byte(`{"version":1,"seq":2,"size":67108864,"chunks":1,"chunk_size":67108864,"sha256":"`+
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"+`"}`))
	f.Add(int64(2), []byte(`{"version":1,"seq":2,"size":-1}`))
	f.Add(int64(2), []byte(`{`))
	f.Fuzz(func(t *testing.T, seq int64, b []byte) {
		m, err := parseManifest(seq, b)
		if err != nil {
			return
		}
		if m.Seq != seq || m.Chunks < 1 || m.Size > MaxSize {
			t.Fatalf("accepted %+v", m)
		}
		var total int64
		for i := range m.Chunks {
			n := m.chunkLen(i)
			if n < 0 || n > m.ChunkSize {
				t.Fatalf("chunk %d of %+v: length %d", i, m, n)
			}
			total += int64(n)
		}
		if total != m.Size {
			t.Fatalf("chunks of %+v add up to %d", m, total)
		}
	})
}

// TestKeys checks the documented layout and that key order is numeric
// order, which every range Save and Load use depends on.
func TestKeys(t *testing.T) {
	k, err := newKeys("r/", "job")
	if err != nil {
		t.Fatal(err)
	}
	if got := k.manifest(42); got != "r/job/m/00000000000000000042" {
		t.Fatalf("manifest key %q", got)
	}
	if got := k.chunk(42, 7); got != "r/job/d/00000000000000000042/00000007" {
		t.Fatalf("chunk key %q", got)
	}
	seqs := []int64{1, 9, 10, 99, 100, 1 << 40, 1<<63 - 1}
	var ms, cs []string
	for _, s := range seqs {
		ms = append(ms, k.manifest(s))
		cs = append(cs, k.chunk(s, 0), k.chunk(s, 9), k.chunk(s, 10), k.chunk(s, 99999999))
		if got, ok := k.seqOf([]byte(k.manifest(s))); !ok || got != s {
			t.Fatalf("seqOf(manifest(%d)) = %d, %v", s, got, ok)
		}
	}
	if !slices.IsSorted(ms) || !slices.IsSorted(cs) {
		t.Fatal("key order is not numeric order")
	}
	mFrom, mEnd := k.manifests()
	dFrom, dEnd := k.chunks()
	for _, key := range ms {
		if key < mFrom || key >= mEnd {
			t.Fatalf("%q outside the manifests", key)
		}
	}
	for _, key := range cs {
		if key < dFrom || key >= dEnd {
			t.Fatalf("%q outside the chunks", key)
		}
	}
	// The chunks of seq are [chunk(seq, 0), chunkDir(seq+1)); the claim of
	// seq clears from chunk(seq, 1), never chunk 0 of seq.
	if !(k.chunk(5, 0) < k.chunk(5, 1) && k.chunk(5, 99999999) < k.chunkDir(6)) {
		t.Fatal("chunk ranges")
	}
	for _, bad := range []string{"r/job/m/42", "r/job/m/0000000000000000004x", "r/job/m/00000000000000000000", "r/jo/m/00000000000000000001"} {
		if _, ok := k.seqOf([]byte(bad)); ok {
			t.Fatalf("seqOf(%q) accepted", bad)
		}
	}
	// Jobs whose names prefix each other do not share keys.
	k2, _ := newKeys("r/", "jo")
	from, end := k2.job()
	if k.manifest(1) >= from && k.manifest(1) < end {
		t.Fatal("job jo's range holds job job's keys")
	}
}
