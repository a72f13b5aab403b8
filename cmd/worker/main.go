// Command worker is the fleet agent: it registers its machine and upgrades
// it when a rollout of its group asks, one slot of the group's semaphore at
// a time (see package worker). `worker fleetlock` serves the FleetLock
// protocol for Fedora CoreOS nodes from any etcd v3 endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coordhq/coord/scheduler"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func defaultEndpoints() string {
	if env := os.Getenv("COORD_ENDPOINTS"); env != "" {
		return env
	}
	return "127.0.0.1:2379"
}

func run(ctx context.Context, args []string, logOut io.Writer) error {
	if len(args) > 0 && args[0] == "fleetlock" {
		return runFleetLock(ctx, args[1:], logOut)
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoints := fs.String("endpoints", defaultEndpoints(), "comma-separated etcd v3 endpoints (coordd or etcd; also $COORD_ENDPOINTS)")
	host, _ := os.Hostname()
	cfg := worker.AgentConfig{}
	fs.StringVar(&cfg.ID, "id", host, "node id, unique in the cluster")
	fs.StringVar(&cfg.Group, "group", "default", "rollout group")
	fs.StringVar(&cfg.Address, "address", "", "address shown to operators")
	labels := fs.String("labels", "", "labels, k=v,...")
	fs.IntVar(&cfg.TTL, "ttl", 10, "session TTL in seconds")
	fs.StringVar(&cfg.VersionCmd, "version-cmd", "", "prints the node's current version (turns on the rollout agent)")
	fs.StringVar(&cfg.DrainCmd, "drain-cmd", "", "drains the node before the upgrade")
	fs.StringVar(&cfg.UpgradeCmd, "upgrade-cmd", "", "upgrades the node; gets COORD_TARGET_VERSION")
	fs.StringVar(&cfg.RebootCmd, "reboot-cmd", "", "reboots the node (the agent must start again after it)")
	fs.StringVar(&cfg.HealthCmd, "health-cmd", "", "exits 0 once the upgraded node is healthy")
	fs.StringVar(&cfg.UndrainCmd, "undrain-cmd", "", "puts the node back in service")
	fs.StringVar(&cfg.BlockCmd, "block-cmd", "", "while it exits non-zero, the node does not start an upgrade")
	healthTimeout := fs.Duration("health-timeout", 0, "how long the health check may fail after an upgrade (default: the rollout's)")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", 2*time.Second, "pause between health checks")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 10*time.Second, "longest pause before looking again at windows and blockers")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	asScheduler := fs.Bool("scheduler", false, "be a candidate for the cron scheduler (one is elected)")
	runJobs := fs.Bool("run-jobs", false, "claim and run cron job runs")
	slots := fs.Int("slots", 1, "with --run-jobs: runs at once")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage: worker [flags]\n       worker fleetlock --listen URL [--groups default=1,...]\n\nflags:")
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	var err error
	if cfg.Labels, err = parseLabels(*labels); err != nil {
		return err
	}
	cfg.HealthTimeout = *healthTimeout
	cfg.Log = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	cfg.Client = cli
	var roles []func(context.Context) error
	if cfg.VersionCmd != "" {
		a, err := worker.NewAgent(cfg)
		if err != nil {
			return err
		}
		roles = append(roles, a.Run)
	}
	if *asScheduler {
		s := &scheduler.Scheduler{Client: cli, ID: cfg.ID, Log: cfg.Log}
		roles = append(roles, s.Run)
	}
	if *runJobs {
		if *slots < 1 {
			return fmt.Errorf("--slots %d: want at least 1", *slots)
		}
		w := &scheduler.Worker{Client: cli, ID: cfg.ID, Labels: cfg.Labels, Slots: *slots, TTL: cfg.TTL, Log: cfg.Log}
		roles = append(roles, w.Run)
	}
	if len(roles) == 0 {
		return errors.New("nothing to do: give --version-cmd (rollouts), --scheduler and/or --run-jobs")
	}
	errc := make(chan error, len(roles))
	for _, role := range roles {
		go func() { errc <- keepRunning(ctx, role, cfg.Log) }()
	}
	var first error
	for range roles {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// keepRunning runs a role until ctx ends; a role that stops (a lost
// session: the store unreachable past the TTL) starts again. Slots, claims
// and progress survive it in the store.
func keepRunning(ctx context.Context, role func(context.Context) error, log *slog.Logger) error {
	for {
		err := role(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("stopped; starting again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: want k=v,...", s)
		}
		out[k] = v
	}
	return out, nil
}

// runFleetLock serves FleetLock for people who already run etcd:
//
//	worker fleetlock --listen URL [--groups default=1,workers=3] [--endpoints ...]
func runFleetLock(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("worker fleetlock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoints := fs.String("endpoints", defaultEndpoints(), "comma-separated etcd v3 endpoints")
	listen := fs.String("listen", "http://127.0.0.1:3333", "URL to serve FleetLock at (its path is the base)")
	groups := fs.String("groups", "default=1", "groups and their slots, e.g. default=1,workers=3")
	var pol worker.FleetLockPolicy
	fs.StringVar(&pol.Window, "window", "", "grant reboot slots only in windows opening at this cron spec")
	fs.DurationVar(&pol.WindowDuration, "window-duration", 0, "how long each window stays open")
	fs.DurationVar(&pol.Deadline, "deadline", 0, "a node holding a slot longer than this without steady-state counts as failed (0: never)")
	fs.IntVar(&pol.FailureBudget, "failure-budget", 0, "failed nodes of a group tolerated before it grants no new slots")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*listen)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return fmt.Errorf("--listen %q: want an http URL with a port, such as http://0.0.0.0:3333/fleetlock", *listen)
	}
	gs := map[string]int{}
	for _, kv := range strings.Split(*groups, ",") {
		g, n, ok := strings.Cut(kv, "=")
		slots, err := strconv.Atoi(n)
		if !ok || err != nil || slots < 0 {
			return fmt.Errorf("--groups %q: want GROUP=SLOTS,...", *groups)
		}
		gs[g] = slots
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	fl, err := worker.NewFleetLock(sctx, worker.FleetLockConfig{Client: cli, Groups: gs, Policy: pol})
	cancel()
	if err != nil {
		return err
	}
	defer fl.Close()
	lis, err := net.Listen("tcp", u.Host)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(u.Path, "/")
	mux := http.NewServeMux()
	mux.Handle(base+"/v1/", http.StripPrefix(base, fl))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving fleetlock", "url", "http://"+lis.Addr().String()+base, "groups", gs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	}
}
