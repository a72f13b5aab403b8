package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
)

// waitFile polls until path exists and returns its content.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written after %v", path, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLockPassesTokenAndExitCode(t *testing.T) {
	m := coordtest.StartSingle(t)
	out, err := runCtl(t, 20*time.Second, m.Endpoint(), "lock", "--id", "me", "jobs", "--",
		"sh", "-c", `echo "$COORD_LOCK_TOKEN $COORD_LOCK_HOLDER"; exit 3`)
	var code exitCode
	if !errors.As(err, &code) || code != 3 {
		t.Fatalf("lock exit: %v, want exit status 3", err)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[1] != "me" {
		t.Fatalf("command saw %q, want TOKEN me", out)
	}
	if tok, err := strconv.ParseInt(f[0], 10, 64); err != nil || tok <= 0 {
		t.Fatalf("COORD_LOCK_TOKEN %q", f[0])
	}
	st, err := runCtl(t, 10*time.Second, m.Endpoint(), "sem", "status", "jobs")
	if err != nil || !strings.HasPrefix(st, "jobs: 0/1 slots taken, 0 waiting") {
		t.Fatalf("status after the command ended: %q %v (slot not released?)", st, err)
	}
	for _, bad := range [][]string{{"lock"}, {"lock", "x"}, {"lock", "x", "--"}, {"lock", "--ttl", "0", "x", "--", "true"}, {"lock", "a/b", "--", "true"}} {
		if _, err := runCtl(t, 10*time.Second, m.Endpoint(), bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
}

// A command whose slot is lost gets SIGTERM; coordctl exits with its code.
func TestLockLostSlotTerminatesCommand(t *testing.T) {
	m := coordtest.StartSingle(t)
	dir := t.TempDir()
	started, termed := filepath.Join(dir, "started"), filepath.Join(dir, "termed")
	script := `trap 'echo term > ` + termed + `; exit 7' TERM; echo up > ` + started + `; while :; do sleep 0.05; done`
	done := make(chan error, 1)
	go func() {
		_, err := runCtl(t, 30*time.Second, m.Endpoint(), "lock", "--id", "victim", "jobs", "--", "sh", "-c", script)
		done <- err
	}()
	waitFile(t, started, 10*time.Second)
	if _, err := runCtl(t, 10*time.Second, m.Endpoint(), "sem", "release", "jobs", "victim"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var code exitCode
		if !errors.As(err, &code) || code != 7 {
			t.Fatalf("lock exit after the slot was lost: %v, want exit status 7", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("command not stopped after its slot was force-released")
	}
	waitFile(t, termed, time.Second)
}

// A coordctl lock process killed with SIGKILL (and its command with it)
// keeps its slot quarantined; the next holder runs only after the lease
// expired and the quarantine passed, with a larger fencing token.
func TestLockKill9(t *testing.T) {
	m := coordtest.StartSingle(t)
	dir := t.TempDir()
	tokfile := filepath.Join(dir, "token")
	cmd := exec.Command(os.Args[0], "--endpoints", m.Endpoint(), "lock", "--ttl", "2", "jobs", "--",
		"sh", "-c", `echo "$COORD_LOCK_TOKEN" > `+tokfile+`; exec sleep 60`)
	cmd.Env = append(os.Environ(), "COORDCTL_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		cmd.Wait()
	}()
	first, _ := strconv.ParseInt(waitFile(t, tokfile, 20*time.Second), 10, 64)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // coordctl and its command
	killed = true
	killedAt := time.Now()

	out, err := runCtl(t, 30*time.Second, m.Endpoint(), "lock", "jobs", "--", "sh", "-c", `echo "$COORD_LOCK_TOKEN"`)
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(killedAt)
	second, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if second <= first {
		t.Fatalf("token %d after %d: not increasing", second, first)
	}
	// Lease TTL 2 s, then a quarantine of the TTL (2 s).
	if waited < 2*time.Second {
		t.Fatalf("next holder ran %v after the kill: before lease expiry and quarantine", waited)
	}
	t.Logf("next holder ran %v after kill -9, token %d -> %d", waited, first, second)
}

func TestSemCommands(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	if out, err := runCtl(t, 10*time.Second, ep, "sem", "status", "s"); err != nil || !strings.Contains(out, "no such semaphore") {
		t.Fatalf("status of a new semaphore: %q %v", out, err)
	}
	if _, err := runCtl(t, 10*time.Second, ep, "sem", "set-limit", "s", "3"); err != nil {
		t.Fatal(err)
	}
	holdDone := make(chan error, 1)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		holdDone <- run(ctx, []string{"--endpoints", ep, "lock", "--id", "h1", "s", "--", "sh", "-c", "echo up > " + started + "; exec sleep 30"}, os.Stdout, os.Stderr)
	}()
	waitFile(t, started, 10*time.Second)
	out, err := runCtl(t, 10*time.Second, ep, "sem", "status", "s")
	if err != nil || !strings.Contains(out, "s: 1/3 slots taken, 0 waiting") || !strings.Contains(out, "h1") {
		t.Fatalf("status: %q %v", out, err)
	}
	js, err := runCtl(t, 10*time.Second, ep, "-w", "json", "sem", "status", "s")
	if err != nil || !strings.Contains(js, `"Limit":3`) || !strings.Contains(js, `"ID":"h1"`) {
		t.Fatalf("json status: %q %v", js, err)
	}
	if _, err := runCtl(t, 10*time.Second, ep, "sem", "release", "s", "h1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-holdDone:
		var code exitCode
		if !errors.As(err, &code) || int(code) != 128+int(syscall.SIGTERM) {
			t.Fatalf("released holder's lock: %v, want 143 (SIGTERM)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("holder still running after release")
	}
	if _, err := runCtl(t, 10*time.Second, ep, "sem", "release", "s", "h1"); !errors.Is(err, semaphore.ErrNotHeld) {
		t.Fatalf("second release: %v, want ErrNotHeld", err)
	}
	for _, bad := range [][]string{{"sem"}, {"sem", "x"}, {"sem", "status"}, {"sem", "set-limit", "s", "many"}, {"sem", "set-limit", "s", "-1"}} {
		if _, err := runCtl(t, 10*time.Second, ep, bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
}

// A command that ignores SIGTERM after its slot is lost is killed after
// --kill-after; coordctl exits as a shell reports SIGKILL (137).
func TestLockKillsStubbornCommand(t *testing.T) {
	m := coordtest.StartSingle(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	done := make(chan error, 1)
	go func() {
		_, err := runCtl(t, 30*time.Second, m.Endpoint(), "lock", "--id", "stubborn", "--kill-after", "300ms", "jobs", "--",
			"sh", "-c", `trap '' TERM; echo up > `+started+`; while :; do sleep 0.05; done`)
		done <- err
	}()
	waitFile(t, started, 10*time.Second)
	if _, err := runCtl(t, 10*time.Second, m.Endpoint(), "sem", "release", "jobs", "stubborn"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !isExit(err, 128+int(syscall.SIGKILL)) {
			t.Fatalf("lock exit: %v, want 137 (SIGKILL)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stubborn command never killed")
	}
}
