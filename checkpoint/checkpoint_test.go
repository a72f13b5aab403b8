package checkpoint_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; the probe
	// ends on its own within the probe interval.
	goleak.VerifyTestMain(withExampleServer{m}, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// client returns a client of m closed when the test ends.
func client(t *testing.T, m *coordtest.Member) *clientv3.Client {
	t.Helper()
	cli := m.Client()
	t.Cleanup(func() { cli.Close() })
	return cli
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func fixedClock() time.Time { return t0 }

// data returns n pseudo-random bytes, a function of n and seed; no two
// chunks of it are alike.
func data(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed, byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// keysUnder returns every key under prefix, in key order.
func keysUnder(t *testing.T, cli *clientv3.Client, prefix string) []string {
	t.Helper()
	resp, err := cli.Get(ctxT(t, 10*time.Second), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// layout returns the keys the package documents for job under root: for
// each seq in order, its manifest, then for each the given number of
// chunks. chunks maps seq to chunk count; a negative count lists the
// chunks without the manifest (garbage of an unpublished Save).
func layout(root, job string, chunks map[int64]int) []string {
	var ms, ds []string
	for _, seq := range slices.Sorted(maps.Keys(chunks)) {
		n := chunks[seq]
		if n > 0 {
			ms = append(ms, fmt.Sprintf("%s%s/m/%020d", root, job, seq))
		}
		for i := range max(n, -n) {
			ds = append(ds, fmt.Sprintf("%s%s/d/%020d/%08d", root, job, seq, i))
		}
	}
	// "d/" sorts before "m/".
	return append(ds, ms...)
}

func wantKeys(t *testing.T, cli *clientv3.Client, root, job string, chunks map[int64]int) {
	t.Helper()
	got := keysUnder(t, cli, root+job+"/")
	want := layout(root, job, chunks)
	if !slices.Equal(got, want) {
		t.Fatalf("keys of job %q:\n got %d: %s\nwant %d: %s", job, len(got), summarize(got), len(want), summarize(want))
	}
}

func summarize(keys []string) string {
	if len(keys) <= 8 {
		return strings.Join(keys, " ")
	}
	return strings.Join(keys[:4], " ") + " ... " + strings.Join(keys[len(keys)-4:], " ")
}

func mustSave(t *testing.T, s *checkpoint.Store, job string, b []byte, guards ...clientv3.Cmp) checkpoint.Info {
	t.Helper()
	info, err := s.Save(ctxT(t, 30*time.Second), job, b, guards...)
	if err != nil {
		t.Fatalf("save %q (%d bytes): %v", job, len(b), err)
	}
	return info
}

func mustLoad(t *testing.T, s *checkpoint.Store, job string, wantSeq int64, want []byte) *checkpoint.Checkpoint {
	t.Helper()
	cp, err := s.Load(ctxT(t, 30*time.Second), job)
	if err != nil {
		t.Fatalf("load %q: %v", job, err)
	}
	if cp.Seq != wantSeq || !bytes.Equal(cp.Data, want) {
		t.Fatalf("load %q: seq %d, %d bytes; want seq %d, %d bytes", job, cp.Seq, len(cp.Data), wantSeq, len(want))
	}
	return cp
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRoundTrip saves and loads checkpoints of every shape: empty, one
// chunk, exactly full chunks, a partial last chunk, many chunks; checks
// what Save and Load report and the exact keys in the store.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 64 << 10
	s := checkpoint.New(cli, checkpoint.WithChunkSize(cs), checkpoint.WithClock(fixedClock))
	for _, tc := range []struct {
		name   string
		size   int
		chunks int
	}{
		{"empty", 0, 1},
		{"small", 100, 1},
		{"one full chunk", cs, 1},
		{"one byte more", cs + 1, 2},
		{"full chunks", 3 * cs, 3},
		{"5MiB", 5 << 20, 80},
		{"5MiB+1", 5<<20 + 1, 81},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := strings.ReplaceAll(tc.name, " ", "-")
			b := data(tc.size, 1)
			meta := map[string]string{"host": "w1", "note": tc.name}
			info, err := s.SaveMeta(ctxT(t, 30*time.Second), job, b, meta)
			if err != nil {
				t.Fatal(err)
			}
			want := checkpoint.Info{
				Seq: 1, Size: int64(tc.size), Chunks: tc.chunks, ChunkSize: cs,
				SHA256: sha(b), Created: t0, Meta: meta, Revision: info.Revision,
			}
			if !infoEqual(info, want) || info.Revision == 0 {
				t.Fatalf("save: %+v\nwant %+v", info, want)
			}
			cp := mustLoad(t, s, job, 1, b)
			if !infoEqual(cp.Info, want) {
				t.Fatalf("load: %+v\nwant %+v", cp.Info, want)
			}
			list, err := s.List(ctxT(t, 10*time.Second), job)
			if err != nil || len(list) != 1 || !infoEqual(list[0], want) {
				t.Fatalf("list: %+v %v", list, err)
			}
			wantKeys(t, cli, checkpoint.DefaultPrefix, job, map[int64]int{1: tc.chunks})

			// A second Save is seq 2; the chunk size may change between.
			b2 := data(tc.size/2+7, 2)
			s2 := checkpoint.New(cli)
			chunks2 := (len(b2) + checkpoint.DefaultChunkSize - 1) / checkpoint.DefaultChunkSize
			if info := mustSave(t, s2, job, b2); info.Seq != 2 || info.Chunks != chunks2 {
				t.Fatalf("second save: %+v, want seq 2 in %d chunks", info, chunks2)
			}
			mustLoad(t, s, job, 2, b2)
			wantKeys(t, cli, checkpoint.DefaultPrefix, job, map[int64]int{1: tc.chunks, 2: chunks2})
		})
	}
}

func infoEqual(a, b checkpoint.Info) bool {
	return a.Seq == b.Seq && a.Size == b.Size && a.Chunks == b.Chunks && a.ChunkSize == b.ChunkSize &&
		a.SHA256 == b.SHA256 && a.Created.Equal(b.Created) && a.Revision == b.Revision &&
		fmt.Sprint(a.Meta) == fmt.Sprint(b.Meta)
}

// TestLargeDefaultChunks round-trips 20 MiB in default (1 MiB) chunks,
// below coordd's default 1.5 MiB request limit, under a custom prefix.
func TestLargeDefaultChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("20 MiB")
	}
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	s := checkpoint.New(cli, checkpoint.WithPrefix("custom/"))
	b := data(20<<20+12345, 3)
	info := mustSave(t, s, "big", b)
	if info.Chunks != 21 || info.ChunkSize != checkpoint.DefaultChunkSize {
		t.Fatalf("info: %+v", info)
	}
	mustLoad(t, s, "big", 1, b)
	wantKeys(t, cli, "custom/", "big", map[int64]int{1: 21})
	if n := len(keysUnder(t, cli, checkpoint.DefaultPrefix)); n != 0 {
		t.Fatalf("%d keys under the default prefix", n)
	}
}

// TestLimits checks ErrTooLarge for data and metadata, and ErrBadJob for
// every method; nothing is written.
func TestLimits(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	s := checkpoint.New(cli)
	ctx := ctxT(t, 30*time.Second)

	_, err := s.Save(ctx, "j", make([]byte, checkpoint.MaxSize+1))
	if !errors.Is(err, checkpoint.ErrTooLarge) {
		t.Fatalf("save of MaxSize+1: %v", err)
	}
	_, err = s.SaveMeta(ctx, "j", nil, map[string]string{"k": strings.Repeat("x", checkpoint.MaxMetaSize)})
	if !errors.Is(err, checkpoint.ErrTooLarge) {
		t.Fatalf("save with large meta: %v", err)
	}
	for _, job := range []string{"", "a/b", "/", "tab\tjob", "nl\n", "del\x7f", "bad\xffutf8", strings.Repeat("j", 257)} {
		if _, err := s.Save(ctx, job, []byte("x")); !errors.Is(err, checkpoint.ErrBadJob) {
			t.Errorf("save %q: %v", job, err)
		}
		if _, err := s.Load(ctx, job); !errors.Is(err, checkpoint.ErrBadJob) {
			t.Errorf("load %q: %v", job, err)
		}
		if _, err := s.List(ctx, job); !errors.Is(err, checkpoint.ErrBadJob) {
			t.Errorf("list %q: %v", job, err)
		}
		if err := s.Delete(ctx, job); !errors.Is(err, checkpoint.ErrBadJob) {
			t.Errorf("delete %q: %v", job, err)
		}
	}
	if keys := keysUnder(t, cli, ""); len(keys) != 0 {
		t.Fatalf("keys written: %v", keys)
	}
	if _, err := s.Load(ctx, "j"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load of a job never saved: %v", err)
	}
	if list, err := s.List(ctx, "j"); err != nil || len(list) != 0 {
		t.Fatalf("list of a job never saved: %v %v", list, err)
	}
}

// lock takes a lock-like key and returns a guard that holds while the key
// is the one taken, as a semaphore grant's or an election's compare does.
func lock(t *testing.T, cli *clientv3.Client, key string) clientv3.Cmp {
	t.Helper()
	resp, err := cli.Put(ctxT(t, 10*time.Second), key, "me")
	if err != nil {
		t.Fatal(err)
	}
	return clientv3.Compare(clientv3.CreateRevision(key), "=", resp.Header.Revision)
}

func unlock(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	if _, err := cli.Delete(ctxT(t, 10*time.Second), key); err != nil {
		t.Fatal(err)
	}
}

// TestGuardFailed: a Save whose guard fails returns ErrGuardFailed and
// makes nothing visible, whether the guard fails before the first write,
// between two chunks (the writer stops at once), or just before the
// manifest. The next guarded Save takes the same seq and clears the
// garbage.
func TestGuardFailed(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 1 << 10
	root := checkpoint.DefaultPrefix

	t.Run("before", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
		g := lock(t, cli, "lock/before")
		first := data(5*cs, 1)
		mustSave(t, s, "before", first, g)
		unlock(t, cli, "lock/before")
		for _, size := range []int{10, 5 * cs} {
			_, err := s.Save(ctxT(t, 10*time.Second), "before", data(size, 2), g)
			if !errors.Is(err, checkpoint.ErrGuardFailed) {
				t.Fatalf("save of %d bytes with a failed guard: %v", size, err)
			}
		}
		mustLoad(t, s, "before", 1, first)
		wantKeys(t, cli, root, "before", map[int64]int{1: 5})
		// A guard that holds, among others that fail: still a failure.
		g2 := lock(t, cli, "lock/before")
		_, err := s.Save(ctxT(t, 10*time.Second), "before", data(10, 3), g2, g)
		if !errors.Is(err, checkpoint.ErrGuardFailed) {
			t.Fatalf("save with one failed guard of two: %v", err)
		}
		wantKeys(t, cli, root, "before", map[int64]int{1: 5})
	})

	for _, tc := range []struct {
		name      string
		failAfter int // chunk after which the guard fails
		written   int // chunks of seq 2 written
	}{
		{"between-chunks", 1, 2},
		{"before-manifest", 7, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
			key := "lock/" + tc.name
			g := lock(t, cli, key)
			first := data(3*cs, 1)
			mustSave(t, s, tc.name, first, g)
			checkpoint.SetAfterChunk(s, func(seq int64, i int) {
				if seq == 2 && i == tc.failAfter {
					unlock(t, cli, key)
				}
			})
			_, err := s.Save(ctxT(t, 10*time.Second), tc.name, data(8*cs, 2), g)
			if !errors.Is(err, checkpoint.ErrGuardFailed) {
				t.Fatalf("save: %v", err)
			}
			mustLoad(t, s, tc.name, 1, first)
			wantKeys(t, cli, root, tc.name, map[int64]int{1: 3, 2: -tc.written})

			// The new holder saves seq 2 and clears the garbage, here
			// longer than its own checkpoint.
			g = lock(t, cli, key)
			next := data(2*cs, 3)
			s2 := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
			if info := mustSave(t, s2, tc.name, next, g); info.Seq != 2 {
				t.Fatalf("seq %d", info.Seq)
			}
			mustLoad(t, s, tc.name, 2, next)
			wantKeys(t, cli, root, tc.name, map[int64]int{1: 3, 2: 2})
		})
	}
}

// TestCrashBeforeManifest: a writer that stops (its context is cancelled,
// as a crash would stop it) after writing every chunk leaves invisible
// garbage; the next Save of the job clears it and publishes the same seq.
func TestCrashBeforeManifest(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 1 << 10
	root := checkpoint.DefaultPrefix
	s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
	first := data(2*cs, 1)
	mustSave(t, s, "job", first)

	ctx, cancel := context.WithCancel(ctxT(t, 10*time.Second))
	crashing := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
	checkpoint.SetAfterChunk(crashing, func(seq int64, i int) {
		if i == 9 {
			cancel()
		}
	})
	if _, err := crashing.Save(ctx, "job", data(10*cs, 2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashing save: %v", err)
	}
	mustLoad(t, s, "job", 1, first)
	if list, err := s.List(ctxT(t, 10*time.Second), "job"); err != nil || len(list) != 1 || list[0].Seq != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	wantKeys(t, cli, root, "job", map[int64]int{1: 2, 2: -10})

	next := data(3*cs+1, 3)
	if info := mustSave(t, s, "job", next); info.Seq != 2 || info.Chunks != 4 {
		t.Fatalf("info: %+v", info)
	}
	mustLoad(t, s, "job", 2, next)
	wantKeys(t, cli, root, "job", map[int64]int{1: 2, 2: 4})
}

// TestKeepLastK: the publish removes every checkpoint below the last K,
// and the garbage below them, in the same transaction.
func TestKeepLastK(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 1 << 10
	root := checkpoint.DefaultPrefix
	for _, keep := range []int{0, 1, 2, 3} {
		job := fmt.Sprint("keep", keep)
		s := checkpoint.New(cli, checkpoint.WithChunkSize(cs), checkpoint.WithKeep(keep))
		var last []byte
		want := map[int64]int{}
		for seq := int64(1); seq <= 5; seq++ {
			last = data(int(seq)*cs, byte(seq))
			info := mustSave(t, s, job, last)
			if info.Seq != seq {
				t.Fatalf("keep %d: seq %d, want %d", keep, info.Seq, seq)
			}
			want[seq] = int(seq)
			delete(want, seq-int64(max(keep, 1)))
			wantKeys(t, cli, root, job, want)
			if gone := seq - int64(max(keep, 1)); gone > 0 {
				// Deleted by the very transaction that published seq.
				key := fmt.Sprintf("%s%s/m/%020d", root, job, gone)
				before, err := cli.Get(ctxT(t, 10*time.Second), key, clientv3.WithRev(info.Revision-1))
				if err != nil || len(before.Kvs) != 1 {
					t.Fatalf("keep %d: seq %d not there just before seq %d: %v %v", keep, gone, seq, before, err)
				}
			}
		}
		mustLoad(t, s, job, 5, last)
		list, err := s.List(ctxT(t, 10*time.Second), job)
		if err != nil || len(list) != max(keep, 1) || list[len(list)-1].Seq != 5 {
			t.Fatalf("keep %d: list %+v %v", keep, list, err)
		}
	}

	// Stray chunks below the oldest kept go with the rest: here a chunk
	// past the end of seq 1, which Load never reads.
	s := checkpoint.New(cli, checkpoint.WithChunkSize(cs), checkpoint.WithKeep(2))
	mustSave(t, s, "stray", data(cs, 1))
	stray := fmt.Sprintf("%sstray/d/%020d/%08d", root, 1, 5)
	if _, err := cli.Put(ctxT(t, 10*time.Second), stray, "x"); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, "stray", data(cs, 2))
	if keys := keysUnder(t, cli, root+"stray/"); !slices.Contains(keys, stray) {
		t.Fatalf("stray chunk gone before its seq was: %v", keys)
	}
	mustSave(t, s, "stray", data(cs, 3))
	wantKeys(t, cli, root, "stray", map[int64]int{2: 1, 3: 1})
}

// TestCorrupt breaks the newest of three checkpoints of a job in each way
// a checkpoint can break: Load must return the previous one together with
// an error wrapping ErrCorrupt that says what is wrong. With no valid
// checkpoint, Load returns nil and ErrCorrupt; List skips a bad manifest
// and says so.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 1 << 10
	root := checkpoint.DefaultPrefix
	chunk := func(job string, seq int64, i int) string { return fmt.Sprintf("%s%s/d/%020d/%08d", root, job, seq, i) }
	manifest := func(job string, seq int64) string { return fmt.Sprintf("%s%s/m/%020d", root, job, seq) }
	put := func(t *testing.T, k, v string) {
		t.Helper()
		if _, err := cli.Put(ctxT(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}
	del := func(t *testing.T, k string) {
		t.Helper()
		if _, err := cli.Delete(ctxT(t, 10*time.Second), k); err != nil {
			t.Fatal(err)
		}
	}
	editManifest := func(t *testing.T, job string, seq int64, from, to string) {
		t.Helper()
		resp, err := cli.Get(ctxT(t, 10*time.Second), manifest(job, seq))
		if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), from) {
			t.Fatalf("manifest: %v %v", resp, err)
		}
		put(t, manifest(job, seq), strings.Replace(string(resp.Kvs[0].Value), from, to, 1))
	}

	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, job string)
		why   string
	}{
		{"garbage chunk", func(t *testing.T, job string) { put(t, chunk(job, 3, 2), string(data(cs, 99))) }, "SHA-256"},
		{"short chunk", func(t *testing.T, job string) { put(t, chunk(job, 3, 1), "x") }, "chunk 1 has 1 bytes"},
		{"torn: chunk deleted", func(t *testing.T, job string) { del(t, chunk(job, 3, 2)) }, "chunk 2 of 4 missing"},
		{"torn: last chunk deleted", func(t *testing.T, job string) { del(t, chunk(job, 3, 3)) }, "chunk 3 of 4 missing"},
		{"torn: first chunk deleted", func(t *testing.T, job string) { del(t, chunk(job, 3, 0)) }, "chunk 0 of 4 missing"},
		{"manifest not JSON", func(t *testing.T, job string) { put(t, manifest(job, 3), "{") }, "manifest"},
		{"manifest checksum", func(t *testing.T, job string) {
			editManifest(t, job, 3, `"sha256":"`, `"sha256":"00`)
		}, "checksum"},
		{"manifest of a newer version", func(t *testing.T, job string) {
			editManifest(t, job, 3, `"version":1`, `"version":2`)
		}, "version 2"},
		{"manifest under the wrong seq", func(t *testing.T, job string) {
			editManifest(t, job, 3, `"seq":3`, `"seq":2`)
		}, "says seq 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := strings.NewReplacer(" ", "-", ":", "").Replace(tc.name)
			s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
			var saved [][]byte
			for seq := range 3 {
				b := data(3*cs+seq+1, byte(seq)) // 4 chunks
				mustSave(t, s, job, b)
				saved = append(saved, b)
			}
			tc.spoil(t, job)
			cp, err := s.Load(ctxT(t, 10*time.Second), job)
			if !errors.Is(err, checkpoint.ErrCorrupt) || cp == nil {
				t.Fatalf("load: %v, %v; want the previous checkpoint and ErrCorrupt", cp, err)
			}
			if cp.Seq != 2 || !bytes.Equal(cp.Data, saved[1]) {
				t.Fatalf("load fell back to seq %d", cp.Seq)
			}
			if !strings.Contains(err.Error(), "seq 3") || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("error does not say what is wrong (%q): %v", tc.why, err)
			}

			// The next Save publishes seq 4, valid again.
			mustSave(t, s, job, saved[0])
			mustLoad(t, s, job, 4, saved[0])
		})
	}

	t.Run("none valid", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
		for seq := range 2 {
			mustSave(t, s, "none", data(2*cs, byte(seq)))
			del(t, chunk("none", int64(seq+1), 1))
		}
		cp, err := s.Load(ctxT(t, 10*time.Second), "none")
		if !errors.Is(err, checkpoint.ErrCorrupt) || cp != nil {
			t.Fatalf("load: %v, %v; want nil and ErrCorrupt", cp, err)
		}
		if errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("ErrNotFound for corrupt checkpoints: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		s := checkpoint.New(cli)
		for range 3 {
			mustSave(t, s, "list", []byte("x"))
		}
		put(t, manifest("list", 2), "not json")
		list, err := s.List(ctxT(t, 10*time.Second), "list")
		if !errors.Is(err, checkpoint.ErrCorrupt) || len(list) != 2 || list[0].Seq != 1 || list[1].Seq != 3 {
			t.Fatalf("list: %+v, %v", list, err)
		}
	})
}

// TestCompactedDuringLoad: when the revision Load reads the chunks at is
// compacted under it, Load reads again from the manifests.
func TestCompactedDuringLoad(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	s := checkpoint.New(cli, checkpoint.WithChunkSize(1<<10))
	b := data(10<<10, 1)
	mustSave(t, s, "job", b)
	ctx := ctxT(t, 10*time.Second)
	calls := 0
	checkpoint.SetBeforeChunks(s, func() {
		calls++
		if calls > 1 {
			return
		}
		put, err := cli.Put(ctx, "other", "x")
		if err == nil {
			_, err = cli.Compact(ctx, put.Header.Revision)
		}
		if err != nil {
			t.Error(err)
		}
	})
	mustLoad(t, s, "job", 1, b)
	if calls != 2 {
		t.Fatalf("Load read the manifests %d times, want 2", calls)
	}
}

// TestDelete deletes every checkpoint of one job, complete or not, and
// nothing of another job whose name it prefixes; a failed guard deletes
// nothing.
func TestDelete(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 1 << 10
	root := checkpoint.DefaultPrefix
	s := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
	ctx := ctxT(t, 30*time.Second)
	mustSave(t, s, "a", data(2*cs, 1))
	mustSave(t, s, "a", data(3*cs, 2))
	ab := data(cs, 3)
	mustSave(t, s, "ab", ab)
	cctx, cancel := context.WithCancel(ctx)
	crashing := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
	checkpoint.SetAfterChunk(crashing, func(int64, int) { cancel() })
	if _, err := crashing.Save(cctx, "a", data(2*cs, 4)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	wantKeys(t, cli, root, "a", map[int64]int{1: 2, 2: 3, 3: -1})

	g := lock(t, cli, "lock/a")
	unlock(t, cli, "lock/a")
	if err := s.Delete(ctx, "a", g); !errors.Is(err, checkpoint.ErrGuardFailed) {
		t.Fatalf("delete with a failed guard: %v", err)
	}
	wantKeys(t, cli, root, "a", map[int64]int{1: 2, 2: 3, 3: -1})

	g = lock(t, cli, "lock/a")
	if err := s.Delete(ctx, "a", g); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, cli, root, "a", nil)
	if _, err := s.Load(ctx, "a"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
	mustLoad(t, s, "ab", 1, ab)
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatalf("delete of nothing: %v", err)
	}
	again := data(10, 5)
	if info := mustSave(t, s, "a", again); info.Seq != 1 {
		t.Fatalf("seq after delete: %d", info.Seq)
	}
	mustLoad(t, s, "a", 1, again)
}

// TestConcurrentWriters: Saves of one job that overlap either succeed with
// distinct, increasing sequence numbers or fail with ErrConflict; every
// published checkpoint is the data its writer saved.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	cli := client(t, m)
	const cs = 256

	t.Run("overtaken", func(t *testing.T) {
		// A claims seq 1 and is overtaken by B, which saves seq 1 whole
		// between A's chunk 0 and chunk 1: A stops with ErrConflict.
		a := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
		b := checkpoint.New(cli, checkpoint.WithChunkSize(cs))
		bData := data(5*cs, 2)
		checkpoint.SetAfterChunk(a, func(seq int64, i int) {
			if i == 0 {
				if info, err := b.Save(context.Background(), "job", bData); err != nil || info.Seq != 1 {
					t.Errorf("b: %+v %v", info, err)
				}
			}
		})
		if _, err := a.Save(ctxT(t, 10*time.Second), "job", data(5*cs, 1)); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("a: %v", err)
		}
		mustLoad(t, b, "job", 1, bData)
		wantKeys(t, cli, checkpoint.DefaultPrefix, "job", map[int64]int{1: 5})
	})

	t.Run("racing", func(t *testing.T) {
		type saved struct {
			info checkpoint.Info
			sum  string
		}
		var mu sync.Mutex
		var wins []saved
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				s := checkpoint.New(cli, checkpoint.WithChunkSize(cs), checkpoint.WithKeep(100))
				for i := range 8 {
					b := data(3*cs+i, byte(10*w+i))
					info, err := s.Save(ctxT(t, 30*time.Second), "race", b)
					if err != nil && !errors.Is(err, checkpoint.ErrConflict) {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					if err == nil {
						mu.Lock()
						wins = append(wins, saved{info, sha(b)})
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		list, err := checkpoint.New(cli).List(ctxT(t, 10*time.Second), "race")
		if err != nil || len(list) != len(wins) || len(wins) == 0 {
			t.Fatalf("list of %d, %d wins: %v", len(list), len(wins), err)
		}
		slices.SortFunc(wins, func(a, b saved) int { return int(a.info.Seq - b.info.Seq) })
		for i, w := range wins {
			if w.info.Seq != int64(i+1) || list[i].Seq != w.info.Seq || list[i].SHA256 != w.sum || list[i].Revision != w.info.Revision {
				t.Fatalf("win %d: %+v, listed %+v", i, w.info, list[i])
			}
			if i > 0 && w.info.Revision <= wins[i-1].info.Revision {
				t.Fatalf("seq %d published at %d, before seq %d at %d", w.info.Seq, w.info.Revision, wins[i-1].info.Seq, wins[i-1].info.Revision)
			}
		}
		cp, err := checkpoint.New(cli).Load(ctxT(t, 10*time.Second), "race")
		if err != nil || sha(cp.Data) != wins[len(wins)-1].sum {
			t.Fatalf("load: %v", err)
		}
		t.Logf("%d of 24 saves won", len(wins))
	})
}

// TestRestart: checkpoints survive a restart of the server between Save
// and Load, and Save continues the sequence after it.
func TestRestart(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	s0 := checkpoint.New(client(t, m), checkpoint.WithChunkSize(64<<10))
	b := data(1<<20+5, 1)
	mustSave(t, s0, "job", b)

	m.Restart()
	cli := client(t, m)
	s := checkpoint.New(cli, checkpoint.WithChunkSize(64<<10))
	mustLoad(t, s, "job", 1, b)
	b2 := data(300<<10, 2)
	if info := mustSave(t, s, "job", b2); info.Seq != 2 {
		t.Fatalf("seq %d", info.Seq)
	}
	mustLoad(t, s, "job", 2, b2)
}

// TestLeaderKilled saves on a three-member cluster, kills the leader,
// saves again once the others took over, and loads from every member,
// the old leader included once it is back.
func TestLeaderKilled(t *testing.T) {
	t.Parallel()
	c := coordtest.StartCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	old := c.Leader()
	cli := client(t, c.Follower())
	s := checkpoint.New(cli, checkpoint.WithChunkSize(32<<10))
	b1 := data(200<<10, 1)
	mustSave(t, s, "job", b1)

	old.Kill()
	// Wait, for at most 15 s, until the survivors take writes again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(wctx, "probe", "x")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted after the leader was killed: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond): // pace the polling
		}
	}
	mustLoad(t, s, "job", 1, b1)
	b2 := data(300<<10, 2)
	if info := mustSave(t, s, "job", b2); info.Seq != 2 || info.Chunks != 10 {
		t.Fatalf("info %+v", info)
	}

	old.Start()
	for _, mem := range c.Members {
		mustLoad(t, checkpoint.New(client(t, mem)), "job", 2, b2)
	}
}
