// Command failover runs 3 masters that campaign with their address and 5
// workers that follow whichever master leads. It kills the leading master
// (its client vanishes: no resignation, its lease must expire) and prints
// how long the workers were without a master.
//
//	go run ./examples/failover [--endpoints host:port] [--ttl 2]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/coordhq/coord/election"
	"github.com/coordhq/coord/examples/internal/exampleenv"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	ttl := flag.Int("ttl", 2, "masters' session TTL in seconds: the failover takes about this long")
	flag.Parse()
	cli, done, err := exampleenv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer done()
	name := fmt.Sprintf("masters-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Masters: each has its own client, as separate processes would.
	masters := map[string]*clientv3.Client{}
	cuts := map[string]func(){}
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("10.0.0.%d:8080", i)
		// Each master reaches the store through a proxy the example can cut:
		// that is how a killed master looks to the cluster.
		via, cut, err := exampleenv.Cuttable(cli.Endpoints()[0])
		if err != nil {
			log.Fatal(err)
		}
		mc, err := exampleenv.NewClient(via)
		if err != nil {
			log.Fatal(err)
		}
		masters[addr], cuts[addr] = mc, cut
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := election.Run(ctx, mc, name, addr, func(ctx context.Context) error {
				l, _ := election.FromContext(ctx)
				fmt.Printf("master %s: leading (token %d)\n", addr, l.Token)
				<-ctx.Done()
				fmt.Printf("master %s: no longer leading (token %d)\n", addr, l.Token)
				return nil
			}, election.WithTTL(*ttl))
			if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				fmt.Printf("master %s: stopped (%v)\n", addr, firstLine(err))
			}
		}()
	}

	// Workers follow the leader through Observe.
	changes := make(chan election.Leader, 64) // what worker 1 follows
	for w := 1; w <= 5; w++ {
		events, err := election.Observe(ctx, cli, name)
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range events {
				if ev.NoLeader {
					fmt.Printf("worker %d: no master\n", w)
					continue
				}
				fmt.Printf("worker %d: following %s (token %d)\n", w, ev.Leader.Value, ev.Leader.Token)
				if w == 1 {
					changes <- ev.Leader
				}
			}
		}()
	}

	<-changes
	time.Sleep(500 * time.Millisecond) // let every worker print the first master
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	leader, err := election.CurrentLeader(lctx, cli, name)
	lcancel()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nkilling master %s (no resignation; its lease must expire)\n\n", leader.Value)
	killed := time.Now()
	cuts[leader.Value]()
	// The store's view: the first moment another candidate leads.
	var next election.Leader
	for {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := election.CurrentLeader(qctx, cli, name)
		qcancel()
		if err == nil && l.Token != leader.Token {
			next = l
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(killed)
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("\nnew master %s after %v (session TTL %ds)\n", next.Value, took.Round(time.Millisecond), *ttl)
	cancel()
	for _, mc := range masters {
		mc.Close()
	}
	wg.Wait()
}

func firstLine(err error) string { s, _, _ := strings.Cut(err.Error(), "\n"); return s }
