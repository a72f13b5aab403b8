package semaphore_test

import (
	"testing"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore/semaphoretest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// memberEnv connects the suite to one coordd member.
func memberEnv(m *coordtest.Member) semaphoretest.Env {
	return semaphoretest.Env{Connect: func(t *testing.T) *clientv3.Client { return m.Client() }}
}

// TestSuite runs the semantic suite on a single coordd member and on a
// follower of three (whose writes are forwarded to the leader). The same
// suite runs against etcd in tests/compat.
func TestSuite(t *testing.T) {
	t.Run("single", func(t *testing.T) { semaphoretest.Run(t, memberEnv(coordtest.StartSingle(t))) })
	t.Run("follower", func(t *testing.T) { semaphoretest.Run(t, memberEnv(coordtest.StartCluster(t, 3).Follower())) })
}
