package checkpointtest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
)

// testCorrupt breaks the newest of three checkpoints of a job in each way
// a checkpoint can break: Load must return the previous one together with
// an error wrapping ErrCorrupt that says what is wrong. With no valid
// checkpoint, Load returns nil and ErrCorrupt; List skips a bad manifest
// and says so.
func testCorrupt(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	put := func(t *testing.T, k, v string) {
		t.Helper()
		if _, err := cli.Put(Ctx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}
	del := func(t *testing.T, k string) {
		t.Helper()
		if _, err := cli.Delete(Ctx(t, 10*time.Second), k); err != nil {
			t.Fatal(err)
		}
	}
	editManifest := func(t *testing.T, job string, seq int64, from, to string) {
		t.Helper()
		key := manifestKey(root, job, seq)
		resp, err := cli.Get(Ctx(t, 10*time.Second), key)
		if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), from) {
			t.Fatalf("manifest: %v %v", resp, err)
		}
		put(t, key, strings.Replace(string(resp.Kvs[0].Value), from, to, 1))
	}

	g := together(t)
	defer g.wait()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, job string)
		why   string
	}{
		{"garbage chunk", func(t *testing.T, job string) { put(t, chunkKey(root, job, 3, 2), string(Data(cs, 99))) }, "SHA-256"},
		{"short chunk", func(t *testing.T, job string) { put(t, chunkKey(root, job, 3, 1), "x") }, "chunk 1 has 1 bytes"},
		{"torn: chunk deleted", func(t *testing.T, job string) { del(t, chunkKey(root, job, 3, 2)) }, "chunk 2 of 4 missing"},
		{"torn: last chunk deleted", func(t *testing.T, job string) { del(t, chunkKey(root, job, 3, 3)) }, "chunk 3 of 4 missing"},
		{"torn: first chunk deleted", func(t *testing.T, job string) { del(t, chunkKey(root, job, 3, 0)) }, "chunk 0 of 4 missing"},
		{"manifest not JSON", func(t *testing.T, job string) { put(t, manifestKey(root, job, 3), "{") }, "manifest"},
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
		g.run(tc.name, func(t *testing.T) {
			job := strings.NewReplacer(" ", "-", ":", "").Replace(tc.name)
			s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
			var saved [][]byte
			for seq := range 3 {
				b := Data(3*cs+seq+1, byte(seq)) // 4 chunks
				MustSave(t, s, job, b)
				saved = append(saved, b)
			}
			tc.spoil(t, job)
			cp, err := s.Load(Ctx(t, 10*time.Second), job)
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
			MustSave(t, s, job, saved[0])
			MustLoad(t, s, job, 4, saved[0])
		})
	}

	g.run("none valid", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs))
		for seq := range 2 {
			MustSave(t, s, "none", Data(2*cs, byte(seq)))
			del(t, chunkKey(root, "none", int64(seq+1), 1))
		}
		cp, err := s.Load(Ctx(t, 10*time.Second), "none")
		if !errors.Is(err, checkpoint.ErrCorrupt) || cp != nil {
			t.Fatalf("load: %v, %v; want nil and ErrCorrupt", cp, err)
		}
		if errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("ErrNotFound for corrupt checkpoints: %v", err)
		}
	})

	g.run("list", func(t *testing.T) {
		s := checkpoint.New(cli, checkpoint.WithPrefix(root))
		for range 3 {
			MustSave(t, s, "list", []byte("x"))
		}
		put(t, manifestKey(root, "list", 2), "not json")
		list, err := s.List(Ctx(t, 10*time.Second), "list")
		if !errors.Is(err, checkpoint.ErrCorrupt) || len(list) != 2 || list[0].Seq != 1 || list[1].Seq != 3 {
			t.Fatalf("list: %+v, %v", list, err)
		}
	})
}

// testCompactedDuringLoad: when the revision Load reads the chunks at is
// compacted under it, between its read of the manifests and its first read
// of a chunk, Load reads again from the manifests.
func testCompactedDuringLoad(t *testing.T, env Env, root string) {
	cli := connect(t, env)
	const cs = 1 << 10
	b := Data(10*cs, 1)
	MustSave(t, checkpoint.New(cli, checkpoint.WithPrefix(root), checkpoint.WithChunkSize(cs)), "job", b)
	ctx := Ctx(t, 10*time.Second)
	reads := 0
	s := checkpoint.New(onManifests(t, env, root, "job", func() {
		reads++
		if reads > 1 {
			return
		}
		put, err := cli.Put(ctx, root+"other", "x")
		if err == nil {
			_, err = cli.Compact(ctx, put.Header.Revision)
		}
		if err != nil {
			t.Error(err)
		}
	}), checkpoint.WithPrefix(root))
	MustLoad(t, s, "job", 1, b)
	if reads != 2 {
		t.Fatalf("Load read the manifests %d times, want 2", reads)
	}
}
