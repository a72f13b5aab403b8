// Command coordctl talks to coordd (or any etcd v3 endpoint): get, put,
// del, watch and status, for those who do not have etcdctl; and the
// coordination primitives: lock and sem (semaphores), elect, checkpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const usage = `usage: coordctl [--endpoints host:port,...] [-w simple|json] COMMAND

Endpoints default to $COORD_ENDPOINTS, else 127.0.0.1:2379.

commands:
  get KEY [--prefix] [--rev N]     print keys and values
  put KEY VALUE                    write a key
  del KEY [--prefix]               delete keys, print how many
  watch KEY [--prefix] [--rev N]   print changes until interrupted
  status                           print each endpoint's member, leader, revision

  lock [-n N] [--ttl S] [--id ID] [--kill-after D] NAME -- COMMAND [ARGS...]
                                   run COMMAND holding one of N slots of semaphore
                                   NAME; COMMAND gets COORD_LOCK_TOKEN and
                                   COORD_LOCK_HOLDER, and SIGTERM if the slot is lost;
                                   exits with COMMAND's exit code
  sem status NAME                  limit, holders (age, token), waiters in order
  sem set-limit NAME N             change the number of slots (0 admits nobody)
  sem release NAME HOLDER          force-release a holder's slot (no quarantine)

  elect [--ttl S] NAME VALUE       campaign in election NAME; print VALUE once elected,
                                   lead until interrupted (then resign)
  elect --observe NAME             print the leader's value at each change, "<none>"
                                   when there is no leader

  checkpoint save JOB [FILE|-]     save FILE (default stdin) as JOB's newest checkpoint
  checkpoint load JOB [-o FILE]    write JOB's newest valid checkpoint to stdout or FILE;
                                   exit 3: newer checkpoints are corrupt, an older one
                                   was written; exit 4: JOB has no checkpoint
  checkpoint list JOB              sequence, size, time and checksum of each checkpoint
  checkpoint delete JOB            delete all of JOB's checkpoints

  rollout start --group G --version V --max-parallel N [--failure-budget F]
      [--min-interval D] [--window 'CRON' --window-duration D] [--health-timeout D]
                                   start a rolling upgrade of group G's nodes to V
  rollout status [--group G] [--watch]
                                   nodes, steps, slot holders, progress and ETA
  rollout pause|resume|abort [--group G]
  nodes [--group G]                registered nodes (cmd/worker agents)
  fleetlock pause|resume GROUP     refuse (or grant again) FleetLock reboot slots of GROUP;
                                   its holders: sem status fleetlock-GROUP

  job create NAME --schedule SPEC [--max-concurrent N] [--concurrency-policy allow|forbid|replace]
      [--retries N] [--backoff D] [--timeout D] [--starting-deadline D] [--target LABEL=VALUE]
      -- COMMAND [ARGS...]         a cron job, run by workers started with --run-jobs
  job list | show|delete|pause|resume|run-now|runs NAME
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var code exitCode
	switch {
	case errors.As(err, &code):
		os.Exit(int(code))
	case err != nil:
		fmt.Fprintln(os.Stderr, "coordctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("coordctl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	defaultEndpoints := "127.0.0.1:2379"
	if env := os.Getenv("COORD_ENDPOINTS"); env != "" {
		defaultEndpoints = env
	}
	endpoints := fs.String("endpoints", defaultEndpoints, "comma-separated client endpoints (also $COORD_ENDPOINTS)")
	format := fs.String("w", "simple", "output format: simple or json")
	timeout := fs.Duration("command-timeout", 5*time.Second, "timeout of one request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	if *format != "simple" && *format != "json" {
		return fmt.Errorf("-w %q: want simple or json", *format)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	c := &ctl{cli: cli, out: out, errOut: errOut, json: *format == "json", timeout: *timeout}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "get":
		return c.get(ctx, rest)
	case "put":
		return c.put(ctx, rest)
	case "del":
		return c.del(ctx, rest)
	case "watch":
		return c.watch(ctx, rest)
	case "status":
		return c.status(ctx, strings.Split(*endpoints, ","))
	case "lock":
		return c.lock(ctx, rest)
	case "sem":
		return c.sem(ctx, rest)
	case "checkpoint":
		return c.checkpoint(ctx, rest, os.Stdin)
	case "elect":
		return c.elect(ctx, rest)
	case "rollout":
		return c.rollout(ctx, rest)
	case "nodes":
		return c.nodes(ctx, rest)
	case "fleetlock":
		return c.fleetlock(ctx, rest)
	case "job":
		return c.job(ctx, rest)
	}
	return fmt.Errorf("unknown command %q (see coordctl -h)", cmd)
}

type ctl struct {
	cli     *clientv3.Client
	out     io.Writer
	errOut  io.Writer // progress and warnings, so that out stays parseable
	json    bool
	timeout time.Duration
}

func (c *ctl) emit(v any, simple func()) error {
	if c.json {
		return json.NewEncoder(c.out).Encode(v)
	}
	simple()
	return nil
}

// keyArgs parses KEY [--prefix] [--rev N] in any order.
func keyArgs(cmd string, args []string, n int) (keys []string, prefix bool, rev int64, err error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	p := fs.Bool("prefix", false, "treat KEY as a prefix")
	r := fs.Int64("rev", 0, "revision to read or watch from")
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, false, 0, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != n {
		return nil, false, 0, fmt.Errorf("%s: want %d argument(s), got %d", cmd, n, len(pos))
	}
	return pos, *p, *r, nil
}

func opts(prefix bool, rev int64) []clientv3.OpOption {
	var o []clientv3.OpOption
	if prefix {
		o = append(o, clientv3.WithPrefix())
	}
	if rev > 0 {
		o = append(o, clientv3.WithRev(rev))
	}
	return o
}

func (c *ctl) get(ctx context.Context, args []string) error {
	keys, prefix, rev, err := keyArgs("get", args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, keys[0], opts(prefix, rev)...)
	if err != nil {
		return err
	}
	return c.emit(resp, func() {
		for _, kv := range resp.Kvs {
			fmt.Fprintf(c.out, "%s\n%s\n", kv.Key, kv.Value)
		}
	})
}

func (c *ctl) put(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("put: want KEY VALUE, got %d argument(s)", len(args))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Put(ctx, args[0], args[1])
	if err != nil {
		return err
	}
	return c.emit(resp, func() { fmt.Fprintln(c.out, "OK") })
}

func (c *ctl) del(ctx context.Context, args []string) error {
	keys, prefix, _, err := keyArgs("del", args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Delete(ctx, keys[0], opts(prefix, 0)...)
	if err != nil {
		return err
	}
	return c.emit(resp, func() { fmt.Fprintln(c.out, resp.Deleted) })
}

func (c *ctl) watch(ctx context.Context, args []string) error {
	keys, prefix, rev, err := keyArgs("watch", args, 1)
	if err != nil {
		return err
	}
	for wr := range c.cli.Watch(clientv3.WithRequireLeader(ctx), keys[0], append(opts(prefix, rev), clientv3.WithPrevKV())...) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if err := c.emit(ev, func() { fmt.Fprintf(c.out, "%s\n%s\n%s\n", ev.Type, ev.Kv.Key, ev.Kv.Value) }); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return errors.New("watch closed")
}

func (c *ctl) status(ctx context.Context, endpoints []string) error {
	for _, ep := range endpoints {
		sctx, cancel := context.WithTimeout(ctx, c.timeout)
		st, err := c.cli.Status(sctx, ep)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", ep, err)
		}
		err = c.emit(st, func() {
			fmt.Fprintf(c.out, "%s member=%x leader=%x revision=%d raft-term=%d raft-index=%d size=%d\n",
				ep, st.Header.MemberId, st.Leader, st.Header.Revision, st.RaftTerm, st.RaftIndex, st.DbSize)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
