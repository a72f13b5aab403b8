package checkpointtest

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// counter is the state of the test computations: a step number.
func counter(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func count(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// counting returns a step function that counts to last, records every
// step it runs (by the number it computes), and calls hook, if set, after
// each.
func counting(last uint64, ran *[]uint64, hook func(n uint64)) func(context.Context, []byte) ([]byte, bool, error) {
	return func(ctx context.Context, state []byte) ([]byte, bool, error) {
		n := count(state) + 1
		*ran = append(*ran, n)
		if hook != nil {
			hook(n)
		}
		return counter(n), n == last, nil
	}
}

// seqRange returns from, from+1, ..., to.
func seqRange[T uint64 | int64](from, to T) []T {
	var out []T
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// testLoopResume stops a Loop mid-way, as a crash would; a new Loop, on a
// new client, resumes at the last checkpoint: no step before it runs
// again, the steps after it do. A third Loop finds the computation done.
func testLoopResume(t *testing.T, env Env, root string) {
	init := func() []byte { return counter(0) }

	ctx, crash := context.WithCancel(Ctx(t, 30*time.Second))
	defer crash()
	var ran1 []uint64
	var saved1 []int64
	l1 := &checkpoint.Loop{
		Store: checkpoint.New(connect(t, env), checkpoint.WithPrefix(root)), Job: "count", EverySteps: 5,
		OnSave: func(p checkpoint.Progress) { saved1 = append(saved1, p.Step) },
	}
	state, resumed, err := l1.Run(ctx, init, counting(20, &ran1, func(n uint64) {
		if n == 13 {
			crash()
		}
	}))
	if !errors.Is(err, context.Canceled) || resumed || count(state) != 13 {
		t.Fatalf("first run: state %d, resumed %v, %v", count(state), resumed, err)
	}
	if !slices.Equal(ran1, seqRange[uint64](1, 13)) || !slices.Equal(saved1, []int64{5, 10}) {
		t.Fatalf("first run: ran %v, saved at %v", ran1, saved1)
	}

	var ran2 []uint64
	var saved2 []checkpoint.Progress
	l2 := &checkpoint.Loop{
		Store: checkpoint.New(connect(t, env), checkpoint.WithPrefix(root)), Job: "count", EverySteps: 5,
		OnSave: func(p checkpoint.Progress) { saved2 = append(saved2, p) },
	}
	state, resumed, err = l2.Run(Ctx(t, 30*time.Second), init, counting(20, &ran2, nil))
	if err != nil || !resumed || count(state) != 20 {
		t.Fatalf("second run: state %d, resumed %v, %v", count(state), resumed, err)
	}
	if !slices.Equal(ran2, seqRange[uint64](11, 20)) {
		t.Fatalf("second run ran %v, want 11..20", ran2)
	}
	if len(saved2) != 2 || saved2[0].Step != 15 || saved2[0].Done || saved2[1].Step != 20 || !saved2[1].Done || saved2[1].Seq != 4 {
		t.Fatalf("second run saved %+v", saved2)
	}
	cp := MustLoad(t, l2.Store, "count", 4, counter(20))
	if cp.Meta[checkpoint.MetaStep] != "20" || cp.Meta[checkpoint.MetaDone] != "true" {
		t.Fatalf("meta %v", cp.Meta)
	}

	var ran3 []uint64
	state, resumed, err = l2.Run(Ctx(t, 10*time.Second), init, counting(20, &ran3, nil))
	if err != nil || !resumed || count(state) != 20 || len(ran3) != 0 {
		t.Fatalf("third run: state %d, resumed %v, ran %v, %v", count(state), resumed, ran3, err)
	}
}

// testLoopPolicy checks when the Loop saves, with a clock the steps move.
func testLoopPolicy(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	g := together(t)
	defer g.wait()
	for _, tc := range []struct {
		name       string
		every      time.Duration
		everySteps int
		tick       time.Duration // the clock moves this much per step
		want       []int64
	}{
		{"every step", 0, 0, time.Second, seqRange[int64](1, 10)},
		{"every 4 steps", 0, 4, time.Second, []int64{4, 8, 10}},
		{"every 3s", 3 * time.Second, 0, time.Second, []int64{3, 6, 9, 10}},
		{"steps first", 5 * time.Second, 3, time.Second, []int64{3, 6, 9, 10}},
		{"time first", 5 * time.Second, 3, 3 * time.Second, []int64{2, 4, 6, 8, 10}},
		{"never due before done", time.Hour, 100, time.Second, []int64{10}},
	} {
		g.run(tc.name, func(t *testing.T) {
			now := t0
			var saved []int64
			l := &checkpoint.Loop{
				Store: checkpoint.New(cli, checkpoint.WithPrefix(root)), Job: strings.ReplaceAll(tc.name, " ", "-"),
				Every: tc.every, EverySteps: tc.everySteps,
				Clock:  func() time.Time { return now },
				OnSave: func(p checkpoint.Progress) { saved = append(saved, p.Step) },
			}
			var ran []uint64
			state, _, err := l.Run(Ctx(t, 30*time.Second), func() []byte { return counter(0) },
				counting(10, &ran, func(uint64) { now = now.Add(tc.tick) }))
			if err != nil || count(state) != 10 {
				t.Fatalf("run: %d %v", count(state), err)
			}
			if !slices.Equal(saved, tc.want) {
				t.Fatalf("saved after steps %v, want %v", saved, tc.want)
			}
		})
	}
}

// testLoopErrors: a failed guard, a failed step and a bad configuration
// stop the Loop with an error; a corrupt newest checkpoint makes it resume
// from the one before and report it; no valid checkpoint at all stops it.
func testLoopErrors(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	ctx := Ctx(t, 30*time.Second)
	init := func() []byte { return counter(0) }

	t.Run("guard", func(t *testing.T) {
		lk := lockKey(root, "loop")
		g := lock(t, cli, lk)
		var ran []uint64
		l := &checkpoint.Loop{
			Store: checkpoint.New(cli, checkpoint.WithPrefix(root)), Job: "guarded", EverySteps: 2,
			Guards: func() []clientv3.Cmp { return []clientv3.Cmp{g} },
		}
		state, _, err := l.Run(ctx, init, counting(10, &ran, func(n uint64) {
			if n == 3 {
				unlock(t, cli, lk)
			}
		}))
		if !errors.Is(err, checkpoint.ErrGuardFailed) || count(state) != 4 {
			t.Fatalf("run: state %d, %v", count(state), err)
		}
		MustLoad(t, l.Store, "guarded", 1, counter(2))
	})

	t.Run("step", func(t *testing.T) {
		boom := errors.New("boom")
		l := &checkpoint.Loop{Store: checkpoint.New(cli, checkpoint.WithPrefix(root)), Job: "failing"}
		state, _, err := l.Run(ctx, init, func(_ context.Context, s []byte) ([]byte, bool, error) {
			if count(s) == 2 {
				return nil, false, boom
			}
			return counter(count(s) + 1), false, nil
		})
		if !errors.Is(err, boom) || count(state) != 2 {
			t.Fatalf("run: state %d, %v", count(state), err)
		}
	})

	t.Run("config", func(t *testing.T) {
		never := func(context.Context, []byte) ([]byte, bool, error) {
			t.Fatal("step called")
			return nil, false, nil
		}
		s := checkpoint.New(cli, checkpoint.WithPrefix(root))
		for _, l := range []*checkpoint.Loop{
			{Job: "x"},
			{Store: s, Job: "x", Every: -1},
			{Store: s, Job: "x", EverySteps: -1},
			{Store: s, Job: "a/b"},
		} {
			if _, _, err := l.Run(ctx, init, never); err == nil {
				t.Errorf("%+v: no error", l)
			}
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithPrefix(root))
		var ran []uint64
		l := &checkpoint.Loop{Store: s, Job: "corrupt"}
		// Saved after every step: seqs 1 to 3 hold steps 1 to 3.
		cctx, crash := context.WithCancel(ctx)
		defer crash()
		_, _, err := l.Run(cctx, init, counting(10, &ran, func(n uint64) {
			if n == 4 {
				crash()
			}
		}))
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, manifestKey(root, "corrupt", 3), "{"); err != nil {
			t.Fatal(err)
		}
		var reported error
		l.OnCorrupt = func(err error) { reported = err }
		ran = nil
		state, resumed, err := l.Run(ctx, init, counting(5, &ran, nil))
		if err != nil || !resumed || count(state) != 5 || !errors.Is(reported, checkpoint.ErrCorrupt) {
			t.Fatalf("run: state %d, resumed %v, reported %v, %v", count(state), resumed, reported, err)
		}
		if !slices.Equal(ran, seqRange[uint64](3, 5)) {
			t.Fatalf("ran %v, want 3..5", ran)
		}

		if _, err := cli.Delete(ctx, root+"corrupt/d/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Run(ctx, init, counting(5, &ran, nil)); !errors.Is(err, checkpoint.ErrCorrupt) {
			t.Fatalf("run with no valid checkpoint: %v", err)
		}
	})
}
