// Command etcd runs a real etcd server (the version pinned in bench/go.mod),
// so that the benchmark harness compares coordd with the etcd its go.sum
// names rather than with whatever binary happens to be installed.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
