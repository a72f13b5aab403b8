package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// syncBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// background runs coordctl until its context is cancelled.
type background struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startCtl(ep string, args ...string) *background {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b := &background{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- run(ctx, append([]string{"--endpoints", ep}, args...), b.out, io.Discard) }()
	return b
}

// stop interrupts the command and returns its error.
func (b *background) stop(t *testing.T) error {
	b.cancel()
	select {
	case err := <-b.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("coordctl did not stop after its interrupt")
		return nil
	}
}

func waitOutput(t *testing.T, b *background, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q never contained %q", b.out.String(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestElectAndObserve(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	obs := startCtl(ep, "elect", "--observe", "masters")
	waitOutput(t, obs, "<none>\n")

	a := startCtl(ep, "elect", "masters", "10.0.0.1:8080")
	waitOutput(t, a, "10.0.0.1:8080\n")
	b := startCtl(ep, "elect", "masters", "10.0.0.2:8080")
	waitOutput(t, obs, "10.0.0.1:8080\n")
	// Wait until the second candidate's key exists: then the first one's
	// resignation hands over directly, with no "no leader" in between.
	cli := m.Client()
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := cli.Get(ctxFor(t), "coord/election/masters/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second candidate not queued: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.out.String(); got != "" {
		t.Fatalf("second candidate printed %q while the first leads", got)
	}
	if err := a.stop(t); err != nil { // interrupted: resigns
		t.Fatalf("interrupted leader: %v", err)
	}
	waitOutput(t, b, "10.0.0.2:8080\n")
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, obs, "10.0.0.2:8080\n<none>\n")
	if err := obs.stop(t); err != nil {
		t.Fatal(err)
	}
	if got, want := obs.out.String(), "<none>\n10.0.0.1:8080\n10.0.0.2:8080\n<none>\n"; got != want {
		t.Fatalf("observer printed %q, want %q", got, want)
	}
	for _, bad := range [][]string{{"elect"}, {"elect", "only-name"}, {"elect", "--observe"}, {"elect", "a/b", "v"}, {"elect", "--ttl", "0", "n", "v"}} {
		if _, err := runCtl(t, 10*time.Second, ep, bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
}
