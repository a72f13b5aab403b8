package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFleetLockServedByCoordd: coordd --fleetlock-listen serves the
// protocol under the URL's path; a slot survives kill -9 of coordd.
func TestFleetLockServedByCoordd(t *testing.T) {
	addr := freeAddr(t)
	procs := startProcsWith(t, 1, []string{"--fleetlock-listen", "http://" + addr + "/fleet", "--fleetlock-groups", "default=1"})
	base := "http://" + addr + "/fleet/v1/"
	post := func(path, id string) int {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"client_params":{"id":"`+id+`","group":"default"}}`))
		req.Header.Set("fleet-lock-protocol", "true")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The store may still be electing: 503 (or no answer) until it serves.
	deadline := time.Now().Add(20 * time.Second)
	for code := post("pre-reboot", "node-a"); code != http.StatusOK; code = post("pre-reboot", "node-a") {
		if time.Now().After(deadline) {
			t.Fatalf("pre-reboot never answered 200 (last %d)", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := post("pre-reboot", "node-b"); code != http.StatusLocked {
		t.Fatalf("node-b with the slot taken: %d, want 423", code)
	}
	procs[0].kill9()
	procs[0].start(t)
	deadline = time.Now().Add(20 * time.Second)
	code := post("pre-reboot", "node-b")
	for code != http.StatusLocked && code != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		code = post("pre-reboot", "node-b")
	}
	if code != http.StatusLocked {
		t.Fatalf("node-b after coordd's kill -9: %d, want 423 (node-a's slot kept)", code)
	}
	if code := post("steady-state", "node-a"); code != http.StatusOK {
		t.Fatalf("node-a steady-state: %d", code)
	}
	if code := post("pre-reboot", "node-b"); code != http.StatusOK {
		t.Fatalf("node-b after node-a's release: %d", code)
	}
}
