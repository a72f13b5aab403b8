package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Tests that need coordctl as a separate process (to kill it) run this
	// test binary with COORDCTL_MAIN=1.
	if os.Getenv("COORDCTL_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func runCtl(t *testing.T, d time.Duration, ep string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := run(ctx, append([]string{"--endpoints", ep}, args...), &out, io.Discard)
	return out.String(), err
}

func TestCommands(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"put", "app/a", "1"}, "OK\n"},
		{[]string{"put", "app/b", "2"}, "OK\n"},
		{[]string{"get", "app/a"}, "app/a\n1\n"},
		{[]string{"get", "app/", "--prefix"}, "app/a\n1\napp/b\n2\n"},
		{[]string{"get", "--rev", "2", "app/", "--prefix"}, "app/a\n1\n"},
		{[]string{"del", "app/", "--prefix"}, "2\n"},
		{[]string{"get", "app/", "--prefix"}, ""},
	}
	for _, s := range steps {
		got, err := runCtl(t, 10*time.Second, ep, s.args...)
		if err != nil || got != s.want {
			t.Fatalf("coordctl %v = %q, %v; want %q", s.args, got, err, s.want)
		}
	}
	js, err := runCtl(t, 10*time.Second, ep, "-w", "json", "put", "j", "v")
	if err != nil || !strings.Contains(js, `"revision":`) {
		t.Fatalf("json put: %q %v", js, err)
	}
	st, err := runCtl(t, 10*time.Second, ep, "status")
	if err != nil || !strings.Contains(st, "revision=5") {
		t.Fatalf("status: %q %v", st, err)
	}
	// The watch prints history from revision 1, then runs until its
	// context ends, which is how an interrupted watch ends: without error.
	w, err := runCtl(t, 2*time.Second, ep, "watch", "j", "--rev", "1")
	if err != nil || !strings.HasPrefix(w, "PUT\nj\nv\n") {
		t.Fatalf("watch: %q %v", w, err)
	}
	for _, bad := range [][]string{{}, {"nope"}, {"put", "only-key"}, {"get"}, {"-w", "yaml", "get", "k"}} {
		if _, err := runCtl(t, 10*time.Second, ep, bad...); err == nil {
			t.Fatalf("coordctl %v: no error", bad)
		}
	}
}
