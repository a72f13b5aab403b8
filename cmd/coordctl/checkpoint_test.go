package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
)

func TestCheckpointCommands(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	dir := t.TempDir()
	run := func(args ...string) (string, error) { return runCtl(t, 30*time.Second, ep, args...) }

	if _, err := run("checkpoint", "load", "job"); !isExit(err, exitNoCheckpoint) {
		t.Fatalf("load of a job without checkpoints: %v, want exit %d", err, exitNoCheckpoint)
	}
	states := [][]byte{[]byte("step 1\n"), bytes.Repeat([]byte("state-2 "), 300_000)} // the second spans chunks
	for i, data := range states {
		f := filepath.Join(dir, fmt.Sprintf("state%d", i))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := run("checkpoint", "save", "job", f)
		if err != nil || !strings.Contains(out, fmt.Sprintf("seq %d, %d bytes", i+1, len(data))) {
			t.Fatalf("save %d: %q %v", i+1, out, err)
		}
	}
	got := filepath.Join(dir, "got")
	if _, err := run("checkpoint", "load", "job", "-o", got); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, states[1]) {
		t.Fatalf("loaded %d bytes, want the newest state (%d bytes)", len(b), len(states[1]))
	}
	list, err := run("checkpoint", "list", "job")
	if err != nil || strings.Count(list, "\n") != 3 {
		t.Fatalf("list: %q %v", list, err)
	}

	// Corrupt a chunk of the newest checkpoint: load writes the older one
	// and says so with exit status 3.
	cli := m.Client()
	defer cli.Close()
	chunk := fmt.Sprintf("coord/checkpoint/job/d/%020d/%08d", 2, 1)
	if _, err := cli.Put(ctxFor(t), chunk, strings.Repeat("x", 1<<20)); err != nil {
		t.Fatal(err)
	}
	out, err := run("checkpoint", "load", "job")
	if !isExit(err, exitOlderCheckpoint) || out != string(states[0]) {
		t.Fatalf("load with a corrupt newest: %q %v; want the first state and exit %d", out, err, exitOlderCheckpoint)
	}

	if _, err := run("checkpoint", "delete", "job"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("checkpoint", "load", "job"); !isExit(err, exitNoCheckpoint) {
		t.Fatalf("load after delete: %v, want exit %d", err, exitNoCheckpoint)
	}
	for _, bad := range [][]string{{"checkpoint"}, {"checkpoint", "save"}, {"checkpoint", "save", "a/b", "-"},
		{"checkpoint", "load"}, {"checkpoint", "load", "job", "extra"}, {"checkpoint", "save", "job", filepath.Join(dir, "missing")}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
}

func isExit(err error, code int) bool {
	var c exitCode
	return errors.As(err, &c) && int(c) == code
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
