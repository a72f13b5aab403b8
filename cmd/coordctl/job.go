package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coordhq/coord/scheduler"
)

// job manages cron jobs:
//
//	coordctl job create NAME --schedule SPEC [...] -- COMMAND [ARGS...]
//	coordctl job list|show|delete|pause|resume|run-now|runs NAME
func (c *ctl) job(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("job: want create, list, show, delete, pause, resume, run-now or runs")
	}
	sub, rest := args[0], args[1:]
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if sub == "create" {
		return c.jobCreate(tctx, rest)
	}
	if sub == "list" {
		jobs, err := scheduler.ListJobs(tctx, c.cli)
		if err != nil {
			return err
		}
		return c.emit(jobs, func() {
			tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSCHEDULE\tPOLICY\tMAX\tPAUSED\tCOMMAND")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\n", j.Name, j.Schedule, j.Policy, j.MaxConcurrent, j.Paused, strings.Join(j.Command, " "))
			}
			tw.Flush()
		})
	}
	if len(rest) != 1 {
		return fmt.Errorf("job %s: want NAME", sub)
	}
	name := rest[0]
	switch sub {
	case "show":
		j, err := scheduler.GetJob(tctx, c.cli, name)
		if err != nil {
			return err
		}
		return c.emit(j, func() {
			fmt.Fprintf(c.out, "%s: %q, policy %s, at most %d at once, %d retries (backoff %v), timeout %v, starting deadline %v, target %q, paused %v\ncommand: %s\n",
				j.Name, j.Schedule, j.Policy, j.MaxConcurrent, j.Retries, time.Duration(j.Backoff), time.Duration(j.Timeout),
				time.Duration(j.StartingDeadline), j.Target, j.Paused, strings.Join(j.Command, " "))
		})
	case "delete":
		if err := scheduler.DeleteJob(tctx, c.cli, name); err != nil {
			return err
		}
		return c.emit(map[string]any{"job": name, "deleted": true}, func() { fmt.Fprintln(c.out, "OK") })
	case "pause", "resume":
		j, err := scheduler.SetPaused(tctx, c.cli, name, sub == "pause")
		if err != nil {
			return err
		}
		return c.emit(j, func() { fmt.Fprintf(c.out, "%s paused: %v\n", j.Name, j.Paused) })
	case "run-now":
		r, err := scheduler.RunNow(tctx, c.cli, name, time.Now())
		if err != nil {
			return err
		}
		return c.emit(r, func() { fmt.Fprintf(c.out, "queued a run of %s at %s\n", name, r.Scheduled.Format(time.RFC3339)) })
	case "runs":
		runs, err := scheduler.ListRuns(tctx, c.cli, name)
		if err != nil {
			return err
		}
		return c.emit(runs, func() {
			tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSCHEDULED\tATTEMPT\tWORKER\tSTATE\tEXIT\tDURATION")
			for _, r := range runs {
				dur := "-"
				if !r.Finished.IsZero() && !r.Started.IsZero() {
					dur = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\n", r.Scheduled.UnixNano(), r.Scheduled.Local().Format(time.DateTime), r.Attempt, r.Worker, r.State, r.ExitCode, dur)
			}
			tw.Flush()
		})
	}
	return fmt.Errorf("job: unknown subcommand %q", sub)
}

func (c *ctl) jobCreate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("job create: want NAME --schedule SPEC [...] -- COMMAND [ARGS...]")
	}
	j := scheduler.Job{Name: args[0]}
	fs := flag.NewFlagSet("job create", flag.ContinueOnError)
	fs.StringVar(&j.Schedule, "schedule", "", "cron spec (5 fields, 6 with seconds first, or @every 10s, @daily...)")
	fs.IntVar(&j.MaxConcurrent, "max-concurrent", 1, "runs of this job at once (policy allow)")
	fs.StringVar(&j.Policy, "concurrency-policy", scheduler.PolicyForbid, "allow, forbid or replace")
	fs.IntVar(&j.Retries, "retries", 0, "retries of a failed run")
	backoff := fs.Duration("backoff", 10*time.Second, "pause before the first retry; doubles after each")
	timeout := fs.Duration("timeout", 0, "kill a run after this long (0: never)")
	deadline := fs.Duration("starting-deadline", 0, "a tick missed by more than this is recorded as missed (0: only the newest missed tick runs)")
	fs.StringVar(&j.Target, "target", "", "run only on workers with this label=value")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	j.Command = fs.Args()
	if len(j.Command) > 0 && j.Command[0] == "--" {
		j.Command = j.Command[1:]
	}
	j.Backoff, j.Timeout, j.StartingDeadline = scheduler.Duration(*backoff), scheduler.Duration(*timeout), scheduler.Duration(*deadline)
	got, err := scheduler.CreateJob(ctx, c.cli, j)
	if err != nil {
		return err
	}
	return c.emit(got, func() { fmt.Fprintf(c.out, "job %s created: %s\n", got.Name, got.Schedule) })
}
