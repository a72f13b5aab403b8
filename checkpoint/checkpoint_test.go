package checkpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/checkpoint/checkpointtest"
	"github.com/coordhq/coord/coord/coordtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; the probe
	// ends on its own within the probe interval.
	goleak.VerifyTestMain(withExampleServer{m}, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// memberEnv connects the suite to one coordd member.
func memberEnv(m *coordtest.Member) checkpointtest.Env {
	return checkpointtest.Env{Connect: func(t *testing.T) *clientv3.Client { return m.Client() }}
}

// TestSuite runs the semantic suite on a single coordd member and on a
// follower of three (whose writes are forwarded to the leader). The same
// suite runs against etcd in tests/compat; what needs coordd itself
// (restarts, a killed leader) is below.
func TestSuite(t *testing.T) {
	t.Parallel()
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		checkpointtest.Run(t, memberEnv(coordtest.StartSingle(t)))
	})
	t.Run("follower", func(t *testing.T) {
		t.Parallel()
		checkpointtest.Run(t, memberEnv(coordtest.StartCluster(t, 3).Follower()))
	})
}

// client returns a client of m closed when the test ends.
func client(t *testing.T, m *coordtest.Member) *clientv3.Client {
	t.Helper()
	cli := m.Client()
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestRestart: checkpoints survive a restart of the server between Save
// and Load, and Save continues the sequence after it.
func TestRestart(t *testing.T) {
	t.Parallel()
	m := coordtest.StartSingle(t)
	s0 := checkpoint.New(client(t, m), checkpoint.WithChunkSize(64<<10))
	b := checkpointtest.Data(1<<20+5, 1)
	checkpointtest.MustSave(t, s0, "job", b)

	m.Restart()
	cli := client(t, m)
	s := checkpoint.New(cli, checkpoint.WithChunkSize(64<<10))
	checkpointtest.MustLoad(t, s, "job", 1, b)
	b2 := checkpointtest.Data(300<<10, 2)
	if info := checkpointtest.MustSave(t, s, "job", b2); info.Seq != 2 {
		t.Fatalf("seq %d", info.Seq)
	}
	checkpointtest.MustLoad(t, s, "job", 2, b2)
}

// TestLeaderKilled saves on a three-member cluster, kills the leader,
// saves again once the others took over, and loads from every member,
// the old leader included once it is back.
func TestLeaderKilled(t *testing.T) {
	t.Parallel()
	c := coordtest.StartCluster(t, 3)
	ctx := checkpointtest.Ctx(t, 60*time.Second)
	old := c.Leader()
	cli := client(t, c.Follower())
	s := checkpoint.New(cli, checkpoint.WithChunkSize(32<<10))
	b1 := checkpointtest.Data(200<<10, 1)
	checkpointtest.MustSave(t, s, "job", b1)

	old.Kill()
	// Wait, for at most 15 s, until the survivors take writes again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(wctx, "probe", "x")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted after the leader was killed: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond): // pace the polling
		}
	}
	checkpointtest.MustLoad(t, s, "job", 1, b1)
	b2 := checkpointtest.Data(300<<10, 2)
	if info := checkpointtest.MustSave(t, s, "job", b2); info.Seq != 2 || info.Chunks != 10 {
		t.Fatalf("info %+v", info)
	}

	old.Start()
	for _, mem := range c.Members {
		checkpointtest.MustLoad(t, checkpoint.New(client(t, mem)), "job", 2, b2)
	}
}
