package main

import (
	"strings"
	"testing"
	"time"

	"github.com/coordhq/coord/coord"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	cfg := o.cfg
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAddr != "127.0.0.1:2379" || cfg.PeerAddr != "127.0.0.1:2380" || cfg.GossipAddr != "127.0.0.1:2381" || cfg.DataDir != "coord-data" || cfg.BootstrapExpect != 1 {
		t.Fatalf("defaults: %+v", cfg)
	}
	o, err = parseFlags([]string{"--name", "a", "--join", "h1:1,h2:2", "--bootstrap-expect", "3",
		"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
		"--listen-metrics-urls", "http://127.0.0.1:9090", "--enable-pprof", "--initial-advertise-peer-urls", "http://10.0.0.1:2380"})
	if err != nil {
		t.Fatal(err)
	}
	cfg = o.cfg
	if len(cfg.Join) != 2 || cfg.BootstrapExpect != 3 || cfg.AutoCompactionMode != coord.CompactRevision || cfg.AutoCompactionRevisions != 1000 ||
		cfg.MetricsAddr != "127.0.0.1:9090" || !cfg.EnablePprof || cfg.AdvertisePeerAddr != "10.0.0.1:2380" {
		t.Fatalf("parsed: %+v", cfg)
	}
	o, err = parseFlags([]string{"--fleetlock-listen", "http://127.0.0.1:3333/fl", "--fleetlock-groups", "default=1,workers=3",
		"--fleetlock-deadline", "30m", "--fleetlock-failure-budget", "2", "--fleetlock-window", "0 2 * * *", "--fleetlock-window-duration", "2h"})
	if err != nil || o.fleetLock == nil || o.fleetLock.base != "/fl" || o.fleetLock.groups["workers"] != 3 ||
		o.fleetLock.policy.Deadline != 30*time.Minute || o.fleetLock.policy.FailureBudget != 2 || o.fleetLock.policy.WindowDuration != 2*time.Hour {
		t.Fatalf("fleetlock flags: %+v %v", o.fleetLock, err)
	}
	for _, r := range []struct {
		retention string
		want      time.Duration
	}{{"1", time.Hour}, {"0.5", 30 * time.Minute}, {"5m", 5 * time.Minute}} {
		o, err = parseFlags([]string{"--auto-compaction-retention", r.retention})
		if err != nil || o.cfg.AutoCompactionRetention != r.want {
			t.Fatalf("periodic %q: %v %v", r.retention, o.cfg.AutoCompactionRetention, err)
		}
	}
	bad := map[string][]string{
		"unknown flag":       {"--nope"},
		"two client URLs":    {"--listen-client-urls", "http://a:1,http://b:2"},
		"https":              {"--listen-client-urls", "https://127.0.0.1:2379"},
		"no port":            {"--listen-peer-urls", "http://127.0.0.1"},
		"bad mode":           {"--auto-compaction-mode", "sometimes"},
		"bad retention":      {"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1h"},
		"zero expect":        {"--bootstrap-expect", "0"},
		"bad log level":      {"--log-level", "loud"},
		"stray argument":     {"extra"},
		"pprof, no metrics":  {"--enable-pprof"},
		"zero snapshot":      {"--snapshot-count", "0"},
		"negative max bytes": {"--max-request-bytes", "-1"},
		"fleetlock https":    {"--fleetlock-listen", "https://127.0.0.1:3333"},
		"fleetlock groups":   {"--fleetlock-listen", "http://127.0.0.1:3333", "--fleetlock-groups", "default"},
		"fleetlock slots":    {"--fleetlock-listen", "http://127.0.0.1:3333", "--fleetlock-groups", "default=-1"},
		"fleetlock group":    {"--fleetlock-listen", "http://127.0.0.1:3333", "--fleetlock-groups", "a/b=1"},
	}
	for name, args := range bad {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}
