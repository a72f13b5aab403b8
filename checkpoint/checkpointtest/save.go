package checkpointtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testRoundTrip saves and loads checkpoints of every shape: empty, one
// chunk, exactly full chunks, a partial last chunk, many chunks; checks
// what Save and Load report and the exact keys in the store. It is the one
// scenario that uses the default prefix.
func testRoundTrip(t *testing.T, env Env, _ string) {
	cli := connect(t, env)
	const cs = 64 << 10
	s := checkpoint.New(cli, checkpoint.WithChunkSize(cs), checkpoint.WithClock(fixedClock))
	g := together(t)
	defer g.wait()
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
		g.run(tc.name, func(t *testing.T) {
			job := strings.ReplaceAll(tc.name, " ", "-")
			b := Data(tc.size, 1)
			meta := map[string]string{"host": "w1", "note": tc.name}
			info, err := s.SaveMeta(Ctx(t, 30*time.Second), job, b, meta)
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
			cp := MustLoad(t, s, job, 1, b)
			if !infoEqual(cp.Info, want) {
				t.Fatalf("load: %+v\nwant %+v", cp.Info, want)
			}
			list, err := s.List(Ctx(t, 10*time.Second), job)
			if err != nil || len(list) != 1 || !infoEqual(list[0], want) {
				t.Fatalf("list: %+v %v", list, err)
			}
			wantKeys(t, cli, checkpoint.DefaultPrefix, job, map[int64]int{1: tc.chunks})

			// A second Save is seq 2; the chunk size may change between.
			b2 := Data(tc.size/2+7, 2)
			s2 := checkpoint.New(cli)
			chunks2 := (len(b2) + checkpoint.DefaultChunkSize - 1) / checkpoint.DefaultChunkSize
			if info := MustSave(t, s2, job, b2); info.Seq != 2 || info.Chunks != chunks2 {
				t.Fatalf("second save: %+v, want seq 2 in %d chunks", info, chunks2)
			}
			MustLoad(t, s, job, 2, b2)
			wantKeys(t, cli, checkpoint.DefaultPrefix, job, map[int64]int{1: tc.chunks, 2: chunks2})
		})
	}
}

// testLargeDefaultChunks round-trips 20 MiB in default (1 MiB) chunks,
// below the default 1.5 MiB request limit of coordd and etcd, under a
// custom prefix.
func testLargeDefaultChunks(t *testing.T, env Env, root string) {
	if testing.Short() {
		t.Skip("20 MiB")
	}
	cli := connect(t, env)
	s := checkpoint.New(cli, checkpoint.WithPrefix(root))
	b := Data(20<<20+12345, 3)
	info := MustSave(t, s, "big", b)
	if info.Chunks != 21 || info.ChunkSize != checkpoint.DefaultChunkSize {
		t.Fatalf("info: %+v", info)
	}
	MustLoad(t, s, "big", 1, b)
	wantKeys(t, cli, root, "big", map[int64]int{1: 21})
	if keys := keysUnder(t, cli, checkpoint.DefaultPrefix+"big/"); len(keys) != 0 {
		t.Fatalf("%d keys under the default prefix", len(keys))
	}
}

// testLimits checks ErrTooLarge for data and metadata, and ErrBadJob for
// every method; nothing is written.
func testLimits(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	s := checkpoint.New(cli, checkpoint.WithPrefix(root))
	ctx := Ctx(t, 30*time.Second)

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
	if keys := keysUnder(t, cli, root); len(keys) != 0 {
		t.Fatalf("keys written: %v", keys)
	}
	if _, err := s.Load(ctx, "j"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load of a job never saved: %v", err)
	}
	if list, err := s.List(ctx, "j"); err != nil || len(list) != 0 {
		t.Fatalf("list of a job never saved: %v %v", list, err)
	}
}

// testKeepLastK: the publish removes every checkpoint below the last K,
// and the garbage below them, in the same transaction.
func testKeepLastK(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	g := together(t)
	defer g.wait()
	for _, keep := range []int{0, 1, 2, 3} {
		job := fmt.Sprint("keep", keep)
		g.run(job, func(t *testing.T) {
			s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs), checkpoint.WithKeep(keep))
			var last []byte
			want := map[int64]int{}
			for seq := int64(1); seq <= 5; seq++ {
				last = Data(int(seq)*cs, byte(seq))
				info := MustSave(t, s, job, last)
				if info.Seq != seq {
					t.Fatalf("seq %d, want %d", info.Seq, seq)
				}
				want[seq] = int(seq)
				delete(want, seq-int64(max(keep, 1)))
				wantKeys(t, cli, root, job, want)
				if gone := seq - int64(max(keep, 1)); gone > 0 {
					// Deleted by the very transaction that published seq.
					before, err := cli.Get(Ctx(t, 10*time.Second), manifestKey(root, job, gone), clientv3.WithRev(info.Revision-1))
					if err != nil || len(before.Kvs) != 1 {
						t.Fatalf("seq %d not there just before seq %d: %v %v", gone, seq, before, err)
					}
				}
			}
			MustLoad(t, s, job, 5, last)
			list, err := s.List(Ctx(t, 10*time.Second), job)
			if err != nil || len(list) != max(keep, 1) || list[len(list)-1].Seq != 5 {
				t.Fatalf("list %+v %v", list, err)
			}
		})
	}

	g.run("stray", func(t *testing.T) {
		testStrayChunk(t, cli, root)
	})
}

// testStrayChunk: stray chunks below the oldest kept go with the rest:
// here a chunk past the end of seq 1, which Load never reads.
func testStrayChunk(t *testing.T, cli *clientv3.Client, root string) {
	const cs = 1 << 10
	s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs), checkpoint.WithKeep(2))
	MustSave(t, s, "stray", Data(cs, 1))
	stray := chunkKey(root, "stray", 1, 5)
	if _, err := cli.Put(Ctx(t, 10*time.Second), stray, "x"); err != nil {
		t.Fatal(err)
	}
	MustSave(t, s, "stray", Data(cs, 2))
	if keys := keysUnder(t, cli, root+"stray/"); !slices.Contains(keys, stray) {
		t.Fatalf("stray chunk gone before its seq was: %v", keys)
	}
	MustSave(t, s, "stray", Data(cs, 3))
	wantKeys(t, cli, root, "stray", map[int64]int{2: 1, 3: 1})
}

// testDelete deletes every checkpoint of one job, complete or not, and
// nothing of another job whose name it prefixes; a failed guard deletes
// nothing.
func testDelete(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
	ctx := Ctx(t, 30*time.Second)
	MustSave(t, s, "a", Data(2*cs, 1))
	MustSave(t, s, "a", Data(3*cs, 2))
	ab := Data(cs, 3)
	MustSave(t, s, "ab", ab)
	// A writer that stops after its claim leaves chunk 0 of seq 3.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	crashing := checkpoint.New(onChunk(t, env, root, "a", func(int64, int) { cancel() }),
		checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
	if _, err := crashing.Save(cctx, "a", Data(2*cs, 4)); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	wantKeys(t, cli, root, "a", map[int64]int{1: 2, 2: 3, 3: -1})

	lk := lockKey(root, "a")
	g := lock(t, cli, lk)
	unlock(t, cli, lk)
	if err := s.Delete(ctx, "a", g); !errors.Is(err, checkpoint.ErrGuardFailed) {
		t.Fatalf("delete with a failed guard: %v", err)
	}
	wantKeys(t, cli, root, "a", map[int64]int{1: 2, 2: 3, 3: -1})

	g = lock(t, cli, lk)
	if err := s.Delete(ctx, "a", g); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, cli, root, "a", nil)
	if _, err := s.Load(ctx, "a"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
	MustLoad(t, s, "ab", 1, ab)
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatalf("delete of nothing: %v", err)
	}
	again := Data(10, 5)
	if info := MustSave(t, s, "a", again); info.Seq != 1 {
		t.Fatalf("seq after delete: %d", info.Seq)
	}
	MustLoad(t, s, "a", 1, again)
}
