package coord

import (
	"testing"
	"time"
)

func TestCompactPolicyPeriodic(t *testing.T) {
	p := &compactPolicy{mode: CompactPeriodic, period: time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		after time.Duration
		rev   int64
		want  int64 // 0: no compaction
	}{
		{0, 10, 0},
		{30 * time.Minute, 50, 0},
		{time.Hour, 90, 10},                // the sample from an hour ago
		{time.Hour + 6*time.Minute, 95, 0}, // nothing an hour old that is newer
		{90 * time.Minute, 120, 50},
		{3 * time.Hour, 130, 120},
		{3 * time.Hour, 130, 0}, // never the same revision twice
	}
	for _, s := range steps {
		got, ok := p.next(t0.Add(s.after), s.rev)
		if (s.want == 0) == ok || (ok && got != s.want) {
			t.Fatalf("at +%v rev %d: compact to %d (%v), want %d", s.after, s.rev, got, ok, s.want)
		}
	}
	if len(p.samples) > 3 {
		t.Fatalf("samples older than the period are kept: %d", len(p.samples))
	}
}

func TestCompactPolicyRevision(t *testing.T) {
	p := &compactPolicy{mode: CompactRevision, revisions: 100}
	now := time.Now()
	for _, s := range []struct{ rev, want int64 }{{50, 0}, {100, 0}, {101, 1}, {101, 0}, {500, 400}} {
		got, ok := p.next(now, s.rev)
		if (s.want == 0) == ok || (ok && got != s.want) {
			t.Fatalf("rev %d: compact to %d (%v), want %d", s.rev, got, ok, s.want)
		}
	}
}
