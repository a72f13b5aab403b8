package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
	"github.com/coordhq/coord/semaphore"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// fleetLock starts a FleetLock server over HTTP on loopback.
func fleetLock(t *testing.T, cli *clientv3.Client, groups map[string]int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fl, err := worker.NewFleetLock(ctx, worker.FleetLockConfig{Client: cli, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fl)
	t.Cleanup(func() {
		srv.Close()
		fl.Close()
	})
	return srv.URL
}

type reply struct {
	status int
	kind   string
}

// call sends one protocol request as Zincati would.
func call(t *testing.T, method, url, body string, header bool) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header {
		req.Header.Set("fleet-lock-protocol", "true")
	}
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Kind, Value string }
		if err := json.Unmarshal(b, &e); err != nil || e.Kind == "" || e.Value == "" {
			t.Fatalf("%s %s: status %d with body %q: want JSON {kind, value}", method, url, resp.StatusCode, b)
		}
		r.kind = e.Kind
	}
	return r
}

func params(id, group string) string {
	b, _ := json.Marshal(map[string]any{"client_params": map[string]string{"id": id, "group": group}})
	return string(b)
}

func TestFleetLockProtocol(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	base := fleetLock(t, cli, map[string]int{"default": 1, "workers": 2})
	lock, unlock := base+"/v1/pre-reboot", base+"/v1/steady-state"
	post := func(url, body string) reply { return call(t, http.MethodPost, url, body, true) }
	want := func(what string, got reply, status int, kind string) {
		t.Helper()
		if got.status != status || got.kind != kind {
			t.Fatalf("%s: %d %q, want %d %q", what, got.status, got.kind, status, kind)
		}
	}

	// Every way to get the request wrong.
	want("no protocol header", call(t, http.MethodPost, lock, params("a", "default"), false), 400, worker.KindMissingHeader)
	want("GET", call(t, http.MethodGet, lock, "", true), 405, worker.KindMethodNotAllowed)
	want("not JSON", post(lock, "{"), 400, worker.KindDecodeError)
	want("no client_params", post(lock, `{"id":"a"}`), 400, worker.KindDecodeError)
	want("oversized body", post(lock, `{"client_params":{"id":"`+strings.Repeat("a", 70<<10)+`","group":"default"}}`), 400, worker.KindDecodeError)
	want("empty id", post(lock, params("", "default")), 400, worker.KindInvalidParams)
	want("bad group", post(lock, params("a", "no/slash")), 400, worker.KindInvalidParams)
	want("empty group", post(unlock, params("a", "")), 400, worker.KindInvalidParams)
	want("id with a slash", post(lock, params("a/b", "default")), 400, worker.KindInvalidParams)
	want("unknown group", post(lock, params("a", "elsewhere")), 400, worker.KindUnknownGroup)

	// Recursive and owned slots.
	want("a locks", post(lock, params("a", "default")), 200, "")
	want("a locks again (recursive)", post(lock, params("a", "default")), 200, "")
	want("b finds default full", post(lock, params("b", "default")), 423, worker.KindSemaphoreFull)
	want("b unlocks without holding", post(unlock, params("b", "default")), 200, "")
	want("b is still refused: a's slot is a's", post(lock, params("b", "default")), 423, worker.KindSemaphoreFull)
	want("workers has its own slots", post(lock, params("b", "workers")), 200, "")
	want("a unlocks", post(unlock, params("a", "default")), 200, "")
	want("a unlocks again (unbalanced)", post(unlock, params("a", "default")), 200, "")
	want("b locks default now", post(lock, params("b", "default")), 200, "")

	// Status lists holders with since-when.
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st worker.FleetLockStatus
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Groups) != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
	for _, g := range st.Groups {
		if len(g.Holders) != 1 || g.Holders[0].ID != "b" || time.Since(g.Holders[0].Since) > time.Minute {
			t.Fatalf("group %s holders %+v, want b since just now", g.Group, g.Holders)
		}
	}
	want("status by POST", call(t, http.MethodPost, base+"/v1/status", "", true), 405, worker.KindMethodNotAllowed)
}

// A changed slot count reaches the live semaphore when the server starts
// again with it (airlock's users found theirs never did).
func TestFleetLockSlotChange(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	base := fleetLock(t, cli, map[string]int{"default": 1})
	if r := call(t, http.MethodPost, base+"/v1/pre-reboot", params("a", "default"), true); r.status != 200 {
		t.Fatalf("a: %+v", r)
	}
	if r := call(t, http.MethodPost, base+"/v1/pre-reboot", params("b", "default"), true); r.status != 423 {
		t.Fatalf("b with 1 slot: %+v", r)
	}
	base2 := fleetLock(t, cli, map[string]int{"default": 2}) // restarted with 2 slots
	if r := call(t, http.MethodPost, base2+"/v1/pre-reboot", params("b", "default"), true); r.status != 200 {
		t.Fatalf("b after the change to 2 slots: %+v", r)
	}
	if r := call(t, http.MethodPost, base2+"/v1/pre-reboot", params("c", "default"), true); r.status != 423 {
		t.Fatalf("c with 2 slots held: %+v", r)
	}
	// A slot survives the server: the first server's slots are still held.
	st, err := http.Get(base2 + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(st.Body)
	st.Body.Close()
	if !strings.Contains(string(b), `"slots":2`) || !strings.Contains(string(b), `"id":"a"`) || !strings.Contains(string(b), `"id":"b"`) {
		t.Fatalf("status %s: want 2 slots held by a and b", b)
	}
}

// The server-side policy: a pause, a maintenance window, and a deadline
// past which holders count as failed against the budget. A holder asking
// again is always answered 200; steady-state is never refused.
func TestFleetLockPolicy(t *testing.T) {
	m := coordtest.StartSingle(t)
	cli := m.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var offset atomic.Int64 // how far the server's clock is ahead
	serve := func(p worker.FleetLockPolicy) string {
		fl, err := worker.NewFleetLock(ctx, worker.FleetLockConfig{Client: cli, Groups: map[string]int{"g": 3}, Policy: p,
			Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(fl)
		t.Cleanup(func() { srv.Close(); fl.Close() })
		return srv.URL
	}
	lock := func(base, id string) reply {
		return call(t, http.MethodPost, base+"/v1/pre-reboot", params(id, "g"), true)
	}
	unlock := func(base, id string) reply {
		return call(t, http.MethodPost, base+"/v1/steady-state", params(id, "g"), true)
	}

	// Deadline 1 minute, budget 0.
	base := serve(worker.FleetLockPolicy{Deadline: time.Minute})
	if r := lock(base, "a"); r.status != 200 {
		t.Fatalf("a: %+v", r)
	}
	offset.Store(int64(2 * time.Minute)) // a never came back
	if r := lock(base, "b"); r.status != 423 || r.kind != worker.KindFailureBudget {
		t.Fatalf("b with a overdue: %+v, want 423 %s", r, worker.KindFailureBudget)
	}
	if r := lock(base, "a"); r.status != 200 {
		t.Fatalf("a asking again: %+v, want 200", r)
	}
	if err := semaphore.ForceRelease(ctx, cli, worker.FleetLockPrefix+"g", "a"); err != nil {
		t.Fatal(err)
	}
	if r := lock(base, "b"); r.status != 200 {
		t.Fatalf("b after the operator released a: %+v", r)
	}
	offset.Store(0)

	// Pause.
	if err := worker.PauseFleetLock(ctx, cli, "g"); err != nil {
		t.Fatal(err)
	}
	if r := lock(base, "c"); r.status != 423 || r.kind != worker.KindPaused {
		t.Fatalf("c while paused: %+v", r)
	}
	if r := unlock(base, "b"); r.status != 200 {
		t.Fatalf("steady-state while paused: %+v", r)
	}
	if err := worker.ResumeFleetLock(ctx, cli, "g"); err != nil {
		t.Fatal(err)
	}
	if r := lock(base, "c"); r.status != 200 {
		t.Fatalf("c after resume: %+v", r)
	}

	// A window on January 1st only, 00:00-01:00 (server clock).
	jan := serve(worker.FleetLockPolicy{Window: "0 0 1 1 *", WindowDuration: time.Hour})
	now := time.Now()
	next := time.Date(now.Year()+1, 1, 1, 0, 30, 0, 0, time.Local)
	if now.Month() == 1 && now.Day() == 1 && now.Hour() == 0 {
		t.Skip("inside the test's window right now")
	}
	if r := lock(jan, "d"); r.status != 423 || r.kind != worker.KindOutsideWindow {
		t.Fatalf("d outside the window: %+v", r)
	}
	offset.Store(int64(next.Sub(now)))
	if r := lock(jan, "d"); r.status != 200 {
		t.Fatalf("d inside the window: %+v", r)
	}
	if _, err := worker.NewFleetLock(ctx, worker.FleetLockConfig{Client: cli, Policy: worker.FleetLockPolicy{Window: "whenever", WindowDuration: time.Hour}}); err == nil {
		t.Fatal("a bad window spec was accepted")
	}
}
