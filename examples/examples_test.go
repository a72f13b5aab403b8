// Package examples_test runs every example once, as a user would with
// `go run ./examples/NAME`, and checks what it reports.
package examples_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestExamples(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"batch-throttle", []string{"--jobs", "12", "--slots", "3"}, "never more than 3 at once (limit 3)"},
		{"resume", nil, "were not done again"},
		{"failover", []string{"--ttl", "1"}, "new master"},
		{"rolling-upgrade", []string{"--nodes", "8", "--parallel", "2"}, "upgrades at once (limit 2)"},
		{"cron", []string{"--seconds", "5"}, "never more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./" + c.name}, c.args...)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go run ./examples/%s: %v\n%s", c.name, err, tail(string(out)))
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("go run ./examples/%s printed no %q:\n%s", c.name, c.want, tail(string(out)))
			}
			if c.name == "rolling-upgrade" && !strings.Contains(string(out), "at most 1 upgrades") && !strings.Contains(string(out), "at most 2 upgrades") {
				t.Fatalf("rolling-upgrade exceeded its limit:\n%s", tail(string(out)))
			}
		})
	}
}

func tail(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
