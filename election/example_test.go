package election_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coordhq/coord/coord"
	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// A candidate campaigns, writes under the leadership's guard, and resigns.
func ExampleElection_Campaign() {
	cli, stop := exampleClient() // clientv3.New with your cluster's endpoints
	defer stop()
	ctx := context.Background()

	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	e, err := election.New(sess, "scheduler")
	if err != nil {
		log.Fatal(err)
	}

	l, err := e.Campaign(ctx, "10.0.0.7:8080") // blocks until elected
	if err != nil {
		log.Fatal(err)
	}
	// A write only the leader may make holds only while it leads.
	resp, err := cli.Txn(ctx).If(l.Cmp()).Then(clientv3.OpPut("scheduler/state", "running")).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("guarded write applied:", resp.Succeeded)

	ldr, err := e.Leader(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("leader:", ldr.Value, "with our token:", ldr.Token == l.Token)

	if err := l.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	<-l.Done()
	_, err = e.Leader(ctx)
	fmt.Println("after resigning:", err)
	// Output:
	// guarded write applied: true
	// leader: 10.0.0.7:8080 with our token: true
	// after resigning: election: no leader
}

// A client follows who leads, with no session of its own.
func ExampleObserve() {
	cli, stop := exampleClient() // clientv3.New with your cluster's endpoints
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	events, err := election.Observe(ctx, cli, "scheduler")
	if err != nil {
		log.Fatal(err)
	}
	show := func(ev election.Event) {
		if ev.NoLeader {
			fmt.Println("no leader")
			return
		}
		fmt.Println("leader at", ev.Leader.Value)
	}
	show(<-events)

	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	e, err := election.New(sess, "scheduler")
	if err != nil {
		log.Fatal(err)
	}
	l, err := e.Campaign(ctx, "10.0.0.7:8080")
	if err != nil {
		log.Fatal(err)
	}
	show(<-events)
	if err := l.Proclaim(ctx, "10.0.0.7:9090"); err != nil {
		log.Fatal(err)
	}
	show(<-events)
	if err := l.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	show(<-events)
	// Output:
	// no leader
	// leader at 10.0.0.7:8080
	// leader at 10.0.0.7:9090
	// no leader
}

// A master process runs its work only while it leads, and campaigns again
// whenever it loses the leadership, until it is told to stop.
func ExampleRun() {
	cli, stop := exampleClient() // clientv3.New with your cluster's endpoints
	defer stop()
	ctx, shutdown := context.WithCancel(context.Background()) // on SIGTERM, say

	err := election.Run(ctx, cli, "scheduler", "10.0.0.7:8080", func(ctx context.Context) error {
		l, _ := election.FromContext(ctx)
		fmt.Println("leading, token > 0:", l.Token > 0)
		// Work here until ctx is cancelled: the leadership is lost or Run
		// is shut down. Guard the writes with l.Cmp(). This example shuts
		// down at once.
		shutdown()
		<-ctx.Done()
		return ctx.Err()
	}, election.WithTTL(10))
	fmt.Println("Run:", err)
	// Output:
	// leading, token > 0: true
	// Run: context canceled
}

// exampleClient starts a one-member coordd for an example and returns a
// client of it, and a function that closes both.
func exampleClient() (*clientv3.Client, func()) {
	dir, err := os.MkdirTemp("", "election-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := coord.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ClientAddr, cfg.PeerAddr, cfg.GossipAddr = freeAddr(), freeAddr(), freeAddr()
	cfg.AdvertisePeerAddr = cfg.PeerAddr
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 50*time.Millisecond, 500*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := coord.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{cfg.ClientAddr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Wait until the member serves linearizable reads.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "ready")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cli, func() {
		cli.Close()
		s.Close()
		os.RemoveAll(dir)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
