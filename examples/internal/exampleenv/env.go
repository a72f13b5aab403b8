// Package exampleenv gives the examples a store: the etcd v3 endpoints of
// --endpoints, or a single-member coordd started in the process with its
// data in a temporary directory.
package exampleenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Endpoints is the --endpoints flag every example has.
var Endpoints = flag.String("endpoints", "", "etcd v3 endpoints to use (default: start an embedded coordd)")

// Connect returns a client of the store and a function that releases it
// (and stops the embedded coordd). Call it after flag.Parse.
func Connect() (*clientv3.Client, func(), error) {
	eps := *Endpoints
	cleanup := func() {}
	if eps == "" {
		dir, err := os.MkdirTemp("", "coord-example")
		if err != nil {
			return nil, nil, err
		}
		srv, err := coordtest.Embedded(dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		fmt.Printf("started an embedded coordd on %s\n", srv.ClientAddr())
		eps = srv.ClientAddr()
		cleanup = func() { srv.Close(); os.RemoveAll(dir) }
	}
	cli, err := NewClient(eps)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return cli, func() { cli.Close(); cleanup() }, nil
}

// NewClient connects another client to the same endpoints.
func NewClient(endpoints string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}
