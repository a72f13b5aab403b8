package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coordhq/coord/semaphore"
	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// rollout drives and shows rolling upgrades:
//
//	coordctl rollout start --group G --version V --max-parallel N [...]
//	coordctl rollout status [--group G] [--watch]
//	coordctl rollout pause|resume|abort --group G
func (c *ctl) rollout(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("rollout: want start, status, pause, resume or abort")
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("rollout "+sub, flag.ContinueOnError)
	group := fs.String("group", "default", "rollout group")
	switch sub {
	case "start":
		var r worker.Rollout
		fs.StringVar(&r.Version, "version", "", "version every node of the group moves to (required)")
		fs.IntVar(&r.MaxParallel, "max-parallel", 1, "most nodes upgrading at once")
		fs.IntVar(&r.FailureBudget, "failure-budget", 0, "failed nodes tolerated before the rollout halts")
		minInterval := fs.Duration("min-interval", 0, "least time between the starts of two upgrades")
		fs.StringVar(&r.Window, "window", "", "cron spec of when upgrade windows open, e.g. '0 2 * * *'")
		windowDur := fs.Duration("window-duration", 0, "how long each window stays open")
		health := fs.Duration("health-timeout", 0, "how long a node's health check may fail after its upgrade (default 5m)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("rollout start: unexpected argument %q", fs.Arg(0))
		}
		r.Group, r.MinInterval, r.WindowDuration, r.HealthTimeout = *group, worker.Duration(*minInterval), worker.Duration(*windowDur), worker.Duration(*health)
		tctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		got, err := worker.StartRollout(tctx, c.cli, r)
		if err != nil {
			return err
		}
		return c.emit(got, func() {
			fmt.Fprintf(c.out, "rollout of %s to %s started: %d at a time, failure budget %d\n", got.Group, got.Version, got.MaxParallel, got.FailureBudget)
		})
	case "pause", "resume", "abort":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		tctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		op := map[string]func(context.Context, *clientv3.Client, string) (*worker.Rollout, error){
			"pause": worker.PauseRollout, "resume": worker.ResumeRollout, "abort": worker.AbortRollout}[sub]
		r, err := op(tctx, c.cli, *group)
		if err != nil {
			return err
		}
		return c.emit(r, func() { fmt.Fprintf(c.out, "rollout of %s is %s\n", r.Group, r.State) })
	case "status":
		watch := fs.Bool("watch", false, "print again at every change until interrupted")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if !*watch {
			return c.rolloutStatus(ctx, *group)
		}
		return c.watchRollout(ctx, *group)
	default:
		return fmt.Errorf("rollout: unknown subcommand %q", sub)
	}
}

// RolloutStatus is what `rollout status -w json` prints.
type RolloutStatus struct {
	Rollout  *worker.Rollout    `json:"rollout"`
	Nodes    []worker.Node      `json:"nodes"`
	Holders  []semaphore.Holder `json:"holders"`
	Failures []worker.Failure   `json:"failures"`
	Counts   map[string]int     `json:"counts"` // done, in_progress, failed, waiting
}

func (c *ctl) readRollout(ctx context.Context, group string) (*RolloutStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := worker.GetRollout(ctx, c.cli, group)
	if err != nil {
		return nil, err
	}
	st := &RolloutStatus{Rollout: r, Counts: map[string]int{"done": 0, "in_progress": 0, "failed": 0, "waiting": 0}}
	if st.Nodes, err = worker.ListNodes(ctx, c.cli, group); err != nil {
		return nil, err
	}
	sem, err := semaphore.GetStatus(ctx, c.cli, "rollout-"+group)
	if err != nil {
		return nil, err
	}
	st.Holders = sem.Holders
	if st.Failures, err = worker.Failures(ctx, c.cli, group); err != nil {
		return nil, err
	}
	for _, n := range st.Nodes {
		switch {
		case n.State == worker.StateFailed:
			st.Counts["failed"]++
		case n.State == worker.StateUpgrading:
			st.Counts["in_progress"]++
		case n.Version == r.Version:
			st.Counts["done"]++
		default:
			st.Counts["waiting"]++
		}
	}
	return st, nil
}

func (c *ctl) rolloutStatus(ctx context.Context, group string) error {
	st, err := c.readRollout(ctx, group)
	if err != nil {
		return err
	}
	return c.emit(st, func() { c.printRollout(st, time.Now()) })
}

func (c *ctl) printRollout(st *RolloutStatus, now time.Time) {
	r := st.Rollout
	total := len(st.Nodes)
	done := st.Counts["done"]
	fmt.Fprintf(c.out, "rollout of %s to %s: %s", r.Group, r.Version, r.State)
	if r.Reason != "" {
		fmt.Fprintf(c.out, " (%s)", r.Reason)
	}
	fmt.Fprintf(c.out, ", %d at a time, started %s ago\n", r.MaxParallel, now.Sub(r.Started).Round(time.Second))
	fmt.Fprintf(c.out, "%s %d/%d done, %d in progress, %d failed, %d waiting%s\n",
		bar(done, total, 30), done, total, st.Counts["in_progress"], st.Counts["failed"], st.Counts["waiting"], eta(r.Started, now, done, total))
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSTATE\tSTEP\tSINCE")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.ID, n.Version, n.State, n.Step, age(now, n.Since))
	}
	tw.Flush()
	if len(st.Holders) > 0 {
		var hs []string
		for _, h := range st.Holders {
			hs = append(hs, fmt.Sprintf("%s (%s)", h.ID, age(now, h.Since)))
		}
		fmt.Fprintf(c.out, "slots held by: %s\n", strings.Join(hs, ", "))
	}
	for _, f := range st.Failures {
		fmt.Fprintf(c.out, "failed: %s: %s\n", f.ID, f.Reason)
	}
}

func bar(done, total, width int) string {
	if total == 0 {
		return "[" + strings.Repeat(".", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// eta extrapolates the rate so far; it says nothing before the first node.
func eta(started, now time.Time, done, total int) string {
	if done == 0 || done >= total {
		return ""
	}
	per := now.Sub(started) / time.Duration(done)
	return fmt.Sprintf(", about %s left", (per * time.Duration(total-done)).Round(time.Second))
}

// watchRollout prints the status again whenever the rollout or a node of
// the group changes, until interrupted.
func (c *ctl) watchRollout(ctx context.Context, group string) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	specs := c.cli.Watch(wctx, worker.RolloutPrefix+group+"/", clientv3.WithPrefix())
	nodes := c.cli.Watch(wctx, worker.NodesPrefix+group+"/", clientv3.WithPrefix())
	for {
		if err := c.rolloutStatus(ctx, group); err != nil && ctx.Err() == nil {
			return err
		}
		fmt.Fprintln(c.out)
		// Coalesce bursts: at most one print per 200 ms.
		select {
		case <-ctx.Done():
			return nil
		case <-specs:
		case <-nodes:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodes lists registered nodes: coordctl nodes [--group G]
func (c *ctl) nodes(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	group := fs.String("group", "", "only this group")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ns, err := worker.ListNodes(ctx, c.cli, *group)
	if err != nil {
		return err
	}
	return c.emit(ns, func() {
		now := time.Now()
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tNODE\tVERSION\tSTATE\tSTEP\tADDRESS\tSINCE")
		for _, n := range ns {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Group, n.ID, n.Version, n.State, n.Step, n.Address, age(now, n.Since))
		}
		tw.Flush()
	})
}
