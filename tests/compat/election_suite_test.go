package compat

import (
	"testing"
	"time"

	"github.com/coordhq/coord/election/electiontest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestElectionSuiteOnEtcd runs the election's semantic suite, the one its
// own tests run on coordd, against etcd 3.7.3.
func TestElectionSuiteOnEtcd(t *testing.T) {
	etcd := startEtcd(t)
	endpoints := etcd.Endpoints()
	electiontest.Run(t, electiontest.Env{Connect: func(t *testing.T) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}})
}
