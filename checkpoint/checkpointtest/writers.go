package checkpointtest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
)

// testGuardFailed: a Save whose guard fails returns ErrGuardFailed and
// makes nothing visible, whether the guard fails before the first write,
// between two chunks (the writer stops at once), or just before the
// manifest. The next guarded Save takes the same seq and clears the
// garbage.
func testGuardFailed(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	g := together(t)
	defer g.wait()

	g.run("before", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
		lk := lockKey(root, "before")
		g := lock(t, cli, lk)
		first := Data(5*cs, 1)
		MustSave(t, s, "before", first, g)
		unlock(t, cli, lk)
		for _, size := range []int{10, 5 * cs} {
			_, err := s.Save(Ctx(t, 10*time.Second), "before", Data(size, 2), g)
			if !errors.Is(err, checkpoint.ErrGuardFailed) {
				t.Fatalf("save of %d bytes with a failed guard: %v", size, err)
			}
		}
		MustLoad(t, s, "before", 1, first)
		wantKeys(t, cli, root, "before", map[int64]int{1: 5})
		// A guard that holds, among others that fail: still a failure.
		g2 := lock(t, cli, lk)
		_, err := s.Save(Ctx(t, 10*time.Second), "before", Data(10, 3), g2, g)
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
		g.run(tc.name, func(t *testing.T) {
			job, lk := tc.name, lockKey(root, tc.name)
			s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
			g := lock(t, cli, lk)
			first := Data(3*cs, 1)
			MustSave(t, s, job, first, g)
			// Another client takes the lock away right after chunk
			// failAfter of seq 2.
			losing := checkpoint.New(onChunk(t, env, root, job, func(seq int64, i int) {
				if seq == 2 && i == tc.failAfter {
					unlock(t, cli, lk)
				}
			}), checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
			_, err := losing.Save(Ctx(t, 10*time.Second), job, Data(8*cs, 2), g)
			if !errors.Is(err, checkpoint.ErrGuardFailed) {
				t.Fatalf("save: %v", err)
			}
			MustLoad(t, s, job, 1, first)
			wantKeys(t, cli, root, job, map[int64]int{1: 3, 2: -tc.written})

			// The new holder saves seq 2 and clears the garbage, here
			// longer than its own checkpoint.
			g = lock(t, cli, lk)
			next := Data(2*cs, 3)
			if info := MustSave(t, s, job, next, g); info.Seq != 2 {
				t.Fatalf("seq %d", info.Seq)
			}
			MustLoad(t, s, job, 2, next)
			wantKeys(t, cli, root, job, map[int64]int{1: 3, 2: 2})
		})
	}
}

// testCrashBeforeManifest: a writer that stops (its context is cancelled,
// as a crash would stop it) after writing every chunk leaves invisible
// garbage; the next Save of the job clears it and publishes the same seq.
func testCrashBeforeManifest(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
	first := Data(2*cs, 1)
	MustSave(t, s, "job", first)

	ctx, cancel := context.WithCancel(Ctx(t, 10*time.Second))
	defer cancel()
	crashing := checkpoint.New(onChunk(t, env, root, "job", func(seq int64, i int) {
		if i == 9 {
			cancel()
		}
	}), checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
	if _, err := crashing.Save(ctx, "job", Data(10*cs, 2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashing save: %v", err)
	}
	MustLoad(t, s, "job", 1, first)
	if list, err := s.List(Ctx(t, 10*time.Second), "job"); err != nil || len(list) != 1 || list[0].Seq != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	wantKeys(t, cli, root, "job", map[int64]int{1: 2, 2: -10})

	next := Data(3*cs+1, 3)
	if info := MustSave(t, s, "job", next); info.Seq != 2 || info.Chunks != 4 {
		t.Fatalf("info: %+v", info)
	}
	MustLoad(t, s, "job", 2, next)
	wantKeys(t, cli, root, "job", map[int64]int{1: 2, 2: 4})
}

// testConcurrentWriters: Saves of one job that overlap either succeed with
// distinct, increasing sequence numbers or fail with ErrConflict; every
// published checkpoint is the data its writer saved.
func testConcurrentWriters(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 256

	t.Run("overtaken", func(t *testing.T) {
		// A claims seq 1 and is overtaken by B, which saves seq 1 whole
		// between A's chunk 0 and chunk 1: A stops with ErrConflict.
		b := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
		bData := Data(5*cs, 2)
		a := checkpoint.New(onChunk(t, env, root, "job", func(seq int64, i int) {
			if i == 0 {
				if info, err := b.Save(Ctx(t, 10*time.Second), "job", bData); err != nil || info.Seq != 1 {
					t.Errorf("b: %+v %v", info, err)
				}
			}
		}), checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
		if _, err := a.Save(Ctx(t, 10*time.Second), "job", Data(5*cs, 1)); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("a: %v", err)
		}
		MustLoad(t, b, "job", 1, bData)
		wantKeys(t, cli, root, "job", map[int64]int{1: 5})
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
				s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs), checkpoint.WithKeep(100))
				for i := range 8 {
					b := Data(3*cs+i, byte(10*w+i))
					info, err := s.Save(Ctx(t, 30*time.Second), "race", b)
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
		ls := checkpoint.New(cli, checkpoint.WithPrefix(root))
		list, err := ls.List(Ctx(t, 10*time.Second), "race")
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
		cp, err := ls.Load(Ctx(t, 10*time.Second), "race")
		if err != nil || sha(cp.Data) != wins[len(wins)-1].sum {
			t.Fatalf("load: %v", err)
		}
		t.Logf("%d of 24 saves won", len(wins))
	})
}
