package electiontest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordhq/coord/election"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Candidate is one participant of an election: a session of its own and
// its Election.
type Candidate struct {
	Sess     *concurrency.Session
	Election *election.Election
}

// NewCandidate starts a session of ttl seconds on cli, closed when the
// test ends, and returns its candidate in election name.
func NewCandidate(t *testing.T, cli *clientv3.Client, name string, ttl int) *Candidate {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	e, err := election.New(sess, name)
	if err != nil {
		t.Fatal(err)
	}
	return &Candidate{Sess: sess, Election: e}
}

// Result is the outcome of a Campaign.
type Result struct {
	L   *election.Leadership
	Err error
}

// CampaignAsync starts Campaign and returns a channel with its result.
func CampaignAsync(ctx context.Context, c *Candidate, value string) <-chan Result {
	ch := make(chan Result, 1)
	go func() {
		l, err := c.Election.Campaign(ctx, value)
		ch <- Result{L: l, Err: err}
	}()
	return ch
}

// Elected returns the leadership of a CampaignAsync, failing the test on
// an error or after Wait.
func Elected(t *testing.T, ch <-chan Result, what string) *election.Leadership {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			t.Fatalf("%s: %v", what, r.Err)
		}
		return r.L
	case <-time.After(Wait):
		t.Fatalf("%s: not elected after %v", what, Wait)
		return nil
	}
}

// Failed returns the error of a CampaignAsync, failing the test if it was
// elected or still waits after Wait.
func Failed(t *testing.T, ch <-chan Result, what string) error {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err == nil {
			t.Fatalf("%s: elected (token %d), want an error", what, r.L.Token)
		}
		return r.Err
	case <-time.After(Wait):
		t.Fatalf("%s: Campaign still waits after %v", what, Wait)
		return nil
	}
}

// NotYet fails the test if the CampaignAsync has returned.
func NotYet(t *testing.T, ch <-chan Result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: Campaign returned (%v) while it must wait", what, r.Err)
	default:
	}
}

// ClosedWithin fails the test if done is still open after d.
func ClosedWithin(t *testing.T, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not closed after %v", what, d)
	}
}

// WaitCandidates polls until election name (under DefaultPrefix) has n
// candidate keys.
func WaitCandidates(t *testing.T, cli *clientv3.Client, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		resp, err := cli.Get(Ctx(t, 5*time.Second), election.DefaultPrefix+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: candidates after %v: %v (err %v), want %d", name, Wait, resp, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader returns the current leader of election name, failing the test if
// there is none.
func Leader(t *testing.T, cli *clientv3.Client, name string) election.Leader {
	t.Helper()
	ldr, err := election.CurrentLeader(Ctx(t, 5*time.Second), cli, name)
	if err != nil {
		t.Fatalf("leader of %s: %v", name, err)
	}
	return ldr
}

// NoLeader fails the test if election name has a leader.
func NoLeader(t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	if ldr, err := election.CurrentLeader(Ctx(t, 5*time.Second), cli, name); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("leader of %s: %+v, %v; want ErrNoLeader", name, ldr, err)
	}
}

// GuardedPut writes key only while l is held, and reports whether it did.
func GuardedPut(t *testing.T, cli *clientv3.Client, l *election.Leadership, key string) bool {
	t.Helper()
	resp, err := cli.Txn(Ctx(t, 5*time.Second)).If(l.Cmp()).Then(clientv3.OpPut(key, "x")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	return resp.Succeeded
}
