package compat

import (
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint/checkpointtest"
	"github.com/coordhq/coord/semaphore/semaphoretest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The primitives speak only clientv3, so their semantic suites, which
// their own packages run on coordd, run unchanged against etcd 3.7.3.

// TestSemaphoreSuiteOnEtcd runs the semaphore's semantic suite, the one its
// own tests run on coordd, against etcd 3.7.3.
func TestSemaphoreSuiteOnEtcd(t *testing.T) {
	etcd := startEtcd(t)
	endpoints := etcd.Endpoints()
	semaphoretest.Run(t, semaphoretest.Env{Connect: func(t *testing.T) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}})
}

// TestCheckpointSuiteOnEtcd runs the checkpoint's semantic suite, the one
// its own tests run on coordd, against etcd 3.7.3: chunked writes fenced by
// guards, torn and corrupt checkpoints, compaction during a Load, the Loop.
func TestCheckpointSuiteOnEtcd(t *testing.T) {
	etcd := startEtcd(t)
	endpoints := etcd.Endpoints()
	checkpointtest.Run(t, checkpointtest.Env{Connect: func(t *testing.T) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}})
}
