// Package checkpointtest is the checkpoint package's semantic test suite,
// run against any etcd v3 endpoint: coordd in the checkpoint package's
// tests, a real etcd in tests/compat.
//
// The suite needs nothing but clients. The faults it injects (a guard lost
// between two chunks of a Save, a writer that stops before its manifest, a
// writer overtaken after its claim, a compaction between the manifests and
// the chunks of a Load) come from a client whose KV runs a function
// between two requests of a Save or a Load (see inject.go), so they are
// the same on every endpoint and need no hook in the checkpoint package.
//
// Run owns the keys under "checkpointtest/", "lock/checkpointtest/" and
// checkpoint.DefaultPrefix on the endpoint, and compacts its history once:
// give it an endpoint of its own.
package checkpointtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Env connects the suite to the cluster under test.
type Env struct {
	// Connect returns a new client; the suite closes it. Scenarios run at
	// once, so it is called from several goroutines at a time.
	Connect func(t *testing.T) *clientv3.Client
}

// Run runs every scenario of the suite as a subtest and returns when they
// have ended. Each scenario works under a key prefix of its own, so they
// run at once, except the one that compacts the store's history: it runs
// alone, first, because a compaction fails every read at an older
// revision, in any scenario.
func Run(t *testing.T, env Env) {
	t.Run("CompactedDuringLoad", func(t *testing.T) {
		testCompactedDuringLoad(t, env, "checkpointtest/CompactedDuringLoad/")
	})
	g := together(t)
	defer g.wait()
	for _, sc := range []struct {
		name string
		fn   func(t *testing.T, env Env, root string)
	}{
		{"RoundTrip", testRoundTrip},
		{"LargeDefaultChunks", testLargeDefaultChunks},
		{"Limits", testLimits},
		{"GuardFailed", testGuardFailed},
		{"CrashBeforeManifest", testCrashBeforeManifest},
		{"KeepLastK", testKeepLastK},
		{"Corrupt", testCorrupt},
		{"Delete", testDelete},
		{"ConcurrentWriters", testConcurrentWriters},
		{"LoopResume", testLoopResume},
		{"LoopPolicy", testLoopPolicy},
		{"LoopErrors", testLoopErrors},
	} {
		g.run(sc.name, func(t *testing.T) { sc.fn(t, env, "checkpointtest/"+sc.name+"/") })
	}
}

// group runs subtests of one test at once.
//
// It does not use t.Parallel: parallel subtests take slots of -parallel,
// which defaults to GOMAXPROCS, and the scenarios spend their time waiting
// for round trips, not on the CPU (a write through a follower of coordd
// returns once the follower applied it, tens of milliseconds later), so on
// a small machine the slots, not the endpoint, would set the pace.
// testing allows t.Run from several goroutines as long as they all return
// before the test does, which wait ensures.
type group struct {
	t  *testing.T
	wg sync.WaitGroup
}

func together(t *testing.T) *group { return &group{t: t} }

// run starts fn as the subtest name of g's test, on a goroutine of its own.
func (g *group) run(name string, fn func(t *testing.T)) {
	g.wg.Go(func() { g.t.Run(name, fn) })
}

// wait returns when every subtest run started has ended. The test that
// made g calls it before it returns, even when it fails (defer it).
func (g *group) wait() { g.wg.Wait() }

// Ctx returns a context that ends after d or with the test.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Data returns n pseudo-random bytes, a function of n and seed; no two
// chunks of it are alike.
func Data(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed, byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// MustSave saves b as the newest checkpoint of job, failing the test on an
// error or after 30 seconds.
func MustSave(t *testing.T, s *checkpoint.Store, job string, b []byte, guards ...clientv3.Cmp) checkpoint.Info {
	t.Helper()
	info, err := s.Save(Ctx(t, 30*time.Second), job, b, guards...)
	if err != nil {
		t.Fatalf("save %q (%d bytes): %v", job, len(b), err)
	}
	return info
}

// MustLoad loads the newest checkpoint of job and fails the test unless
// it loads without an error and is want, with sequence number wantSeq.
func MustLoad(t *testing.T, s *checkpoint.Store, job string, wantSeq int64, want []byte) *checkpoint.Checkpoint {
	t.Helper()
	cp, err := s.Load(Ctx(t, 30*time.Second), job)
	if err != nil {
		t.Fatalf("load %q: %v", job, err)
	}
	if cp.Seq != wantSeq || !bytes.Equal(cp.Data, want) {
		t.Fatalf("load %q: seq %d, %d bytes; want seq %d, %d bytes", job, cp.Seq, len(cp.Data), wantSeq, len(want))
	}
	return cp
}

// connect returns a client of env closed when the test ends.
func connect(t *testing.T, env Env) *clientv3.Client {
	t.Helper()
	cli := env.Connect(t)
	t.Cleanup(func() { cli.Close() })
	return cli
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func fixedClock() time.Time { return t0 }

// keysUnder returns every key under prefix, in key order.
func keysUnder(t *testing.T, cli *clientv3.Client, prefix string) []string {
	t.Helper()
	resp, err := cli.Get(Ctx(t, 10*time.Second), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
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
			ms = append(ms, manifestKey(root, job, seq))
		}
		for i := range max(n, -n) {
			ds = append(ds, chunkKey(root, job, seq, i))
		}
	}
	// "d/" sorts before "m/".
	return append(ds, ms...)
}

func manifestKey(root, job string, seq int64) string {
	return fmt.Sprintf("%s%s/m/%020d", root, job, seq)
}

func chunkKey(root, job string, seq int64, i int) string {
	return fmt.Sprintf("%s%s/d/%020d/%08d", root, job, seq, i)
}

// wantKeys fails the test unless the keys of job are exactly its layout.
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

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func infoEqual(a, b checkpoint.Info) bool {
	return a.Seq == b.Seq && a.Size == b.Size && a.Chunks == b.Chunks && a.ChunkSize == b.ChunkSize &&
		a.SHA256 == b.SHA256 && a.Created.Equal(b.Created) && a.Revision == b.Revision &&
		fmt.Sprint(a.Meta) == fmt.Sprint(b.Meta)
}

// lockKey names a lock of the scenario that owns root, outside every
// scenario's root.
func lockKey(root, name string) string { return "lock/" + root + name }

// lock takes a lock-like key and returns a guard that holds while the key
// is the one taken, as a semaphore grant's or an election's compare does.
func lock(t *testing.T, cli *clientv3.Client, key string) clientv3.Cmp {
	t.Helper()
	resp, err := cli.Put(Ctx(t, 10*time.Second), key, "me")
	if err != nil {
		t.Fatal(err)
	}
	return clientv3.Compare(clientv3.CreateRevision(key), "=", resp.Header.Revision)
}

func unlock(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	if _, err := cli.Delete(Ctx(t, 10*time.Second), key); err != nil {
		t.Fatal(err)
	}
}
