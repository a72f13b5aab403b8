package checkpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/coord"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ExampleStore saves checkpoints guarded by a lock and loads the newest;
// once the lock is lost, Save changes nothing.
func ExampleStore() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: exampleEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	store := checkpoint.New(cli)

	// The writer's guard: its lock key is still the one it created. In
	// real use, a semaphore grant's or an election's Cmp.
	lock, err := cli.Put(ctx, "example/lock", "worker-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	guard := clientv3.Compare(clientv3.CreateRevision("example/lock"), "=", lock.Header.Revision)

	for _, state := range []string{"state after step 1", "state after step 2"} {
		if _, err := store.Save(ctx, "example-job", []byte(state), guard); err != nil {
			fmt.Println(err)
			return
		}
	}
	cp, err := store.Load(ctx, "example-job")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("seq %d: %s\n", cp.Seq, cp.Data)

	// The writer loses its lock (it expired; someone else may take it).
	if _, err := cli.Delete(ctx, "example/lock"); err != nil {
		fmt.Println(err)
		return
	}
	_, err = store.Save(ctx, "example-job", []byte("state after step 3"), guard)
	fmt.Println(errors.Is(err, checkpoint.ErrGuardFailed))
	cp, _ = store.Load(ctx, "example-job")
	fmt.Printf("seq %d: %s\n", cp.Seq, cp.Data)
	// Output:
	// seq 2: state after step 2
	// true
	// seq 2: state after step 2
}

// ExampleStore_Load shows the cases a caller of Load handles.
func ExampleStore_Load() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: exampleEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	store := checkpoint.New(cli)

	var state []byte
	cp, err := store.Load(context.Background(), "fresh-job")
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		fmt.Println("no checkpoint: start from the beginning")
		state = []byte("initial")
	case errors.Is(err, checkpoint.ErrCorrupt) && cp != nil:
		// The newest checkpoints are bad; cp is the newest valid one.
		fmt.Printf("resuming from older seq %d: %v\n", cp.Seq, err)
		state = cp.Data
	case err != nil:
		fmt.Println(err) // no valid checkpoint, or no answer
		return
	default:
		state = cp.Data
	}
	fmt.Printf("%s\n", state)
	// Output:
	// no checkpoint: start from the beginning
	// initial
}

// ExampleLoop sums 1..100, one number per step, saving every 25 steps.
// Run again after a crash, it would resume at the last saved step.
func ExampleLoop() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: exampleEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	type sum struct{ Next, Total int }
	loop := &checkpoint.Loop{
		Store:      checkpoint.New(cli),
		Job:        "sum-to-100",
		EverySteps: 25,
		OnSave: func(p checkpoint.Progress) {
			fmt.Printf("saved seq %d after step %d (done: %v)\n", p.Seq, p.Step, p.Done)
		},
	}
	init := func() []byte {
		b, _ := json.Marshal(sum{Next: 1})
		return b
	}
	step := func(ctx context.Context, state []byte) ([]byte, bool, error) {
		var s sum
		if err := json.Unmarshal(state, &s); err != nil {
			return nil, false, err
		}
		s.Total += s.Next
		s.Next++
		next, err := json.Marshal(s)
		return next, s.Next > 100, err
	}
	final, resumed, err := loop.Run(context.Background(), init, step)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s resumed: %v\n", final, resumed)
	// Output:
	// saved seq 1 after step 25 (done: false)
	// saved seq 2 after step 50 (done: false)
	// saved seq 3 after step 75 (done: false)
	// saved seq 4 after step 100 (done: true)
	// {"Next":101,"Total":5050} resumed: false
}

// The examples run against one coordd member, started by the first
// example that asks for it and stopped by TestMain after every test.
var exampleServer struct {
	once      sync.Once
	srv       *coord.Server
	dir       string
	endpoints []string
}

func exampleEndpoints() []string {
	exampleServer.once.Do(startExampleServer)
	return exampleServer.endpoints
}

func startExampleServer() {
	dir, err := os.MkdirTemp("", "checkpoint-example-")
	if err != nil {
		panic(err)
	}
	exampleServer.dir = dir
	cfg := coord.DefaultConfig()
	cfg.Name = "example"
	cfg.DataDir = dir
	cfg.ClientAddr, cfg.PeerAddr, cfg.GossipAddr = freeAddr(), freeAddr(), freeAddr()
	cfg.AdvertisePeerAddr = cfg.PeerAddr
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := coord.New(cfg)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		panic(err)
	}
	exampleServer.srv = srv
	exampleServer.endpoints = []string{cfg.ClientAddr}

	// Ready once it answers a linearizable read: for at most 10 s.
	cli, err := clientv3.New(clientv3.Config{Endpoints: exampleServer.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := cli.Get(ctx, "ready")
		if err == nil {
			cancel()
			return
		}
		if attempt == 50 {
			panic(fmt.Sprintf("example server not ready: %v", err))
		}
		<-ctx.Done() // pace the attempts
		cancel()
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// withExampleServer runs the tests and examples, then stops the example
// server if one started, before goleak looks for leaks.
type withExampleServer struct{ m *testing.M }

func (w withExampleServer) Run() int {
	code := w.m.Run()
	if exampleServer.srv != nil {
		if err := exampleServer.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop example server:", err)
			code = 1
		}
	}
	if exampleServer.dir != "" {
		os.RemoveAll(exampleServer.dir)
	}
	return code
}
