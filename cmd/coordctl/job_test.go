package main

import (
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord/coordtest"
)

func TestJobCommands(t *testing.T) {
	m := coordtest.StartSingle(t)
	ep := m.Endpoint()
	run := func(args ...string) (string, error) { return runCtl(t, 20*time.Second, ep, args...) }
	out, err := run("job", "create", "backup", "--schedule", "@every 1h", "--retries", "2", "--timeout", "5m", "--", "sh", "-c", "echo hi")
	if err != nil || !strings.Contains(out, "job backup created: @every 1h") {
		t.Fatalf("create: %q %v", out, err)
	}
	if out, err := run("job", "list"); err != nil || !strings.Contains(out, "backup") || !strings.Contains(out, "sh -c echo hi") {
		t.Fatalf("list: %q %v", out, err)
	}
	if out, err := run("job", "show", "backup"); err != nil || !strings.Contains(out, "2 retries") || !strings.Contains(out, "timeout 5m0s") {
		t.Fatalf("show: %q %v", out, err)
	}
	if out, err := run("job", "pause", "backup"); err != nil || !strings.Contains(out, "paused: true") {
		t.Fatalf("pause: %q %v", out, err)
	}
	if out, err := run("job", "resume", "backup"); err != nil || !strings.Contains(out, "paused: false") {
		t.Fatalf("resume: %q %v", out, err)
	}
	if _, err := run("job", "run-now", "backup"); err != nil {
		t.Fatal(err)
	}
	out, err = run("job", "runs", "backup")
	if err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("runs: %q %v", out, err)
	}
	if js, err := run("-w", "json", "job", "runs", "backup"); err != nil || !strings.Contains(js, `"state":"pending"`) {
		t.Fatalf("runs json: %q %v", js, err)
	}
	if _, err := run("job", "delete", "backup"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"job"}, {"job", "show"}, {"job", "show", "nope"}, {"job", "create", "x", "--schedule", "often", "--", "true"},
		{"job", "create", "x", "--schedule", "@every 1s"}, {"job", "create", "x", "--schedule", "@every 1s", "--concurrency-policy", "sometimes", "--", "true"}, {"job", "fly", "x"}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("coordctl %v: no error", bad)
		}
	}
}
