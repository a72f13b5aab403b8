// Command coordd runs a coord member: a Raft-replicated key-value store that
// speaks the etcd v3 API. With no flags it runs a single member on
// 127.0.0.1:2379 with its data in ./coord-data.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coordhq/coord/coord"
	"github.com/coordhq/coord/internal/gcpace"
	"github.com/coordhq/coord/worker"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	cfg := o.cfg
	if _, set := os.LookupEnv("GOGC"); !set && o.gcHeadroom < 1 {
		gcpace.Start(gcpace.Policy{Headroom: o.gcHeadroom, MinHeadroom: gcMinHeadroom, MaxPercent: 100})
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.level}))
	s, err := coord.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	var fl *fleetLockServer
	if o.fleetLock != nil {
		if fl, err = startFleetLock(*o.fleetLock, s.ClientAddr(), cfg.Logger); err != nil {
			s.Close()
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	got := <-sig
	cfg.Logger.Info("shutting down", "signal", got.String())
	if fl != nil {
		fl.close()
	}
	return s.Close()
}

// options is what the command line says.
type options struct {
	cfg       coord.Config
	level     slog.Level
	fleetLock *fleetLockOptions // nil: no FleetLock server
	// gcHeadroom is the room the garbage collector leaves for garbage, as
	// a fraction of the live heap once that is past gcMinHeadroom/headroom
	// (see internal/gcpace); 1 or more keeps Go's default.
	gcHeadroom float64
}

// gcMinHeadroom: below a live heap of 64 MiB / --gc-headroom (256 MiB at
// the default), Go's own pace (GOGC=100) is kept.
const gcMinHeadroom = 64 << 20

func parseFlags(args []string) (o options, err error) {
	d := coord.DefaultConfig()
	fs := flag.NewFlagSet("coordd", flag.ContinueOnError)
	name := fs.String("name", d.Name, "human-readable name of this member; also its raft ID")
	dataDir := fs.String("data-dir", d.DataDir, "directory of the raft log and snapshots")
	clientURLs := fs.String("listen-client-urls", "http://"+d.ClientAddr, "URL to serve the etcd v3 gRPC API on (one, http only)")
	advClient := fs.String("advertise-client-urls", "", "client URL other members and MemberList use (default: --listen-client-urls)")
	peerURLs := fs.String("listen-peer-urls", "http://"+d.PeerAddr, "URL raft listens on (one, http only)")
	advPeer := fs.String("initial-advertise-peer-urls", "", "raft URL other members dial (default: --listen-peer-urls)")
	gossip := fs.String("gossip-addr", d.GossipAddr, "host:port for membership gossip (TCP and UDP)")
	join := fs.String("join", "", "comma-separated gossip addresses of members to join")
	expect := fs.Int("bootstrap-expect", d.BootstrapExpect, "members that bootstrap a new cluster together once they see each other")
	snapCount := fs.Uint64("snapshot-count", d.SnapshotCount, "applied entries between raft snapshots")
	quota := fs.Int64("quota-backend-bytes", d.QuotaBytes, "size past which writes fail with NOSPACE until compaction")
	maxReq := fs.Int("max-request-bytes", d.MaxRequestBytes, "largest request accepted, in bytes")
	maxOps := fs.Int("max-txn-ops", d.MaxTxnOps, "most operations in one txn branch")
	compactMode := fs.String("auto-compaction-mode", "periodic", "periodic: keep a duration of history; revision: keep a number of revisions")
	compactRetention := fs.String("auto-compaction-retention", "0", "history to keep: a duration (\"1h\", or a number of hours) for periodic, a count for revision; 0 turns it off")
	metricsURL := fs.String("listen-metrics-urls", "", "URL to serve /metrics and /health on (one, http only; off by default)")
	pprofOn := fs.Bool("enable-pprof", false, "serve Go's /debug/pprof/ on --listen-metrics-urls")
	gcHeadroom := fs.Float64("gc-headroom", 0.25, "room the heap leaves for garbage between collections, as a fraction of the live heap: never less than 64 MiB nor more than Go's default, 1 (GOGC in the environment overrides it)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	flURL := fs.String("fleetlock-listen", "", "serve the FleetLock protocol (Fedora CoreOS reboot slots) at this URL, e.g. http://0.0.0.0:3333/fleetlock (off by default)")
	flGroups := fs.String("fleetlock-groups", "default=1", "FleetLock groups and their slots, e.g. default=1,workers=3; other groups are refused")
	var flPolicy worker.FleetLockPolicy
	fs.StringVar(&flPolicy.Window, "fleetlock-window", "", "FleetLock grants reboot slots only in windows opening at this cron spec, e.g. '0 2 * * *'")
	fs.DurationVar(&flPolicy.WindowDuration, "fleetlock-window-duration", 0, "how long each FleetLock window stays open")
	fs.DurationVar(&flPolicy.Deadline, "fleetlock-deadline", 0, "a node holding a reboot slot longer than this without steady-state counts as failed (0: never)")
	fs.IntVar(&flPolicy.FailureBudget, "fleetlock-failure-budget", 0, "failed nodes of a group tolerated before it grants no new slots")
	// Errors are one line (main prints them); usage only on -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage: coordd [flags]\n\nRuns a coord member: a Raft-replicated key-value store speaking the etcd v3 API.\n\nflags:")
			fs.PrintDefaults()
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := d
	cfg.Name, cfg.DataDir = *name, *dataDir
	cfg.GossipAddr, cfg.BootstrapExpect = *gossip, *expect
	if *join != "" {
		cfg.Join = strings.Split(*join, ",")
	}
	if *expect < 1 {
		return o, fmt.Errorf("--bootstrap-expect must be at least 1")
	}
	cfg.SnapshotCount, cfg.QuotaBytes, cfg.MaxRequestBytes, cfg.MaxTxnOps = *snapCount, *quota, *maxReq, *maxOps
	if cfg.ClientAddr, err = hostPort("--listen-client-urls", *clientURLs); err != nil {
		return o, err
	}
	if cfg.PeerAddr, err = hostPort("--listen-peer-urls", *peerURLs); err != nil {
		return o, err
	}
	if *advClient != "" {
		if cfg.AdvertiseClientAddr, err = hostPort("--advertise-client-urls", *advClient); err != nil {
			return o, err
		}
	}
	cfg.AdvertisePeerAddr = cfg.PeerAddr
	if *advPeer != "" {
		if cfg.AdvertisePeerAddr, err = hostPort("--initial-advertise-peer-urls", *advPeer); err != nil {
			return o, err
		}
	}
	if *metricsURL != "" {
		if cfg.MetricsAddr, err = hostPort("--listen-metrics-urls", *metricsURL); err != nil {
			return o, err
		}
	}
	if *pprofOn && cfg.MetricsAddr == "" {
		return o, fmt.Errorf("--enable-pprof needs --listen-metrics-urls")
	}
	cfg.EnablePprof = *pprofOn
	if err := setCompaction(&cfg, *compactMode, *compactRetention); err != nil {
		return o, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return o, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	switch {
	case *snapCount == 0:
		return o, fmt.Errorf("--snapshot-count must be positive")
	case *quota <= 0:
		return o, fmt.Errorf("--quota-backend-bytes must be positive")
	case *maxReq <= 0:
		return o, fmt.Errorf("--max-request-bytes must be positive")
	case *maxOps <= 0:
		return o, fmt.Errorf("--max-txn-ops must be positive")
	case !(*gcHeadroom > 0):
		return o, fmt.Errorf("--gc-headroom must be positive")
	}
	if *flURL != "" {
		if o.fleetLock, err = parseFleetLock(*flURL, *flGroups); err != nil {
			return o, err
		}
		o.fleetLock.policy = flPolicy
	}
	o.cfg, o.level, o.gcHeadroom = cfg, level, *gcHeadroom
	return o, cfg.Validate()
}

// hostPort takes the host:port of a single http URL.
func hostPort(flagName, v string) (string, error) {
	if strings.Contains(v, ",") {
		return "", fmt.Errorf("%s %q: only one URL is supported", flagName, v)
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%s %q: want a URL such as http://127.0.0.1:2379", flagName, v)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("%s %q: only http is supported (TLS is not implemented yet)", flagName, v)
	}
	if u.Port() == "" {
		return "", fmt.Errorf("%s %q: the URL needs a port", flagName, v)
	}
	return u.Host, nil
}

// setCompaction reads etcd's --auto-compaction-* flags.
func setCompaction(cfg *coord.Config, mode, retention string) error {
	switch coord.CompactionMode(mode) {
	case coord.CompactPeriodic:
		cfg.AutoCompactionMode = coord.CompactPeriodic
		if h, err := strconv.ParseFloat(retention, 64); err == nil && h >= 0 {
			cfg.AutoCompactionRetention = time.Duration(h * float64(time.Hour))
			return nil
		}
		d, err := time.ParseDuration(retention)
		if err != nil || d < 0 {
			return fmt.Errorf("--auto-compaction-retention %q: want a duration such as 1h or 30m, or a number of hours", retention)
		}
		cfg.AutoCompactionRetention = d
	case coord.CompactRevision:
		cfg.AutoCompactionMode = coord.CompactRevision
		n, err := strconv.ParseInt(retention, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("--auto-compaction-retention %q: want a number of revisions in revision mode", retention)
		}
		cfg.AutoCompactionRevisions = n
	default:
		return fmt.Errorf("--auto-compaction-mode %q: want periodic or revision", mode)
	}
	return nil
}
