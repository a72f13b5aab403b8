package semaphore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Throttle work across a fleet: at most two holders at once. The grant's
// context ends if the slot is lost, and its Cmp guards writes.
func Example() {
	dir, _ := os.MkdirTemp("", "semaphore-example")
	defer os.RemoveAll(dir)
	srv, err := coordtest.Embedded(dir) // or any etcd v3 endpoint
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientAddr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()

	ctx := context.Background()
	sem, err := semaphore.New(sess, "upgrades", semaphore.WithLimit(2), semaphore.WithHolderID("node-7"))
	if err != nil {
		log.Fatal(err)
	}
	g, err := sem.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Work while holding the slot; write results only while still holding.
	resp, err := cli.Txn(g.Context()).If(g.Cmp()).Then(clientv3.OpPut("upgrades/node-7", "done")).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("guarded write applied:", resp.Succeeded)

	st, err := semaphore.GetStatus(ctx, cli, "upgrades")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("limit %d, holders %d: %s\n", st.Limit, len(st.Holders), st.Holders[0].ID)

	if err := g.Release(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// guarded write applied: true
	// limit 2, holders 1: node-7
}
