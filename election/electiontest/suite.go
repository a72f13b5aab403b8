// Package electiontest is the election's semantic test suite, run against
// any etcd v3 endpoint: coordd in the election package's tests, a real
// etcd in tests/compat. It needs nothing but clients, so the scenarios
// that kill or partition members, or count the wake-ups the package keeps
// internally, stay in the election package's own tests; they reuse the
// helpers here (Candidate, Observer, RunProbe and the waits).
package electiontest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Wait bounds every wait for something that must happen.
const Wait = 15 * time.Second

// Env connects the suite to the cluster under test.
type Env struct {
	// Connect returns a new client; the suite closes it.
	Connect func(t *testing.T) *clientv3.Client
}

// connect returns a new client of env, closed when the test ends.
func connect(t *testing.T, env Env) *clientv3.Client {
	t.Helper()
	cli := env.Connect(t)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Ctx returns a context that ends after d or with the test.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Run runs every scenario of the suite as a subtest, one after the other.
// Each scenario uses elections of its own, so they share one cluster.
func Run(t *testing.T, env Env) {
	for _, sc := range []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"CampaignProclaimResign", testCampaignProclaimResign},
		{"EtcdRecipeInterop", testEtcdRecipeInterop},
		{"BadName", testBadName},
		{"Order", testOrder},
		{"CampaignReturnsOnlyWithOwnKey", testCampaignReturnsOnlyWithOwnKey},
		{"DoneWhenLost", testDoneWhenLost},
		{"Observe", testObserve},
		{"Compaction", testCompaction},
		{"RunSessionLoss", testRunSessionLoss},
		{"RunFnReturns", testRunFnReturns},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.fn(t, env) })
	}
}
