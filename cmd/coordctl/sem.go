package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/coordhq/coord/semaphore"
)

// sem is the operator's view of semaphores:
//
//	coordctl sem status NAME
//	coordctl sem set-limit NAME N
//	coordctl sem release NAME HOLDER
func (c *ctl) sem(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("sem: want status, set-limit or release")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	switch sub, rest := args[0], args[1:]; sub {
	case "status":
		if len(rest) != 1 {
			return errors.New("sem status: want NAME")
		}
		st, err := semaphore.GetStatus(ctx, c.cli, rest[0])
		if err != nil {
			return err
		}
		return c.emit(st, func() { c.printSemStatus(st) })
	case "set-limit":
		if len(rest) != 2 {
			return errors.New("sem set-limit: want NAME N")
		}
		n, err := strconv.Atoi(rest[1])
		if err != nil {
			return fmt.Errorf("sem set-limit: %q is not a number", rest[1])
		}
		if err := semaphore.SetLimit(ctx, c.cli, rest[0], n); err != nil {
			return err
		}
		return c.emit(map[string]any{"name": rest[0], "limit": n}, func() { fmt.Fprintln(c.out, "OK") })
	case "release":
		if len(rest) != 2 {
			return errors.New("sem release: want NAME HOLDER")
		}
		if err := semaphore.ForceRelease(ctx, c.cli, rest[0], rest[1]); err != nil {
			return err
		}
		return c.emit(map[string]any{"name": rest[0], "released": rest[1]}, func() { fmt.Fprintln(c.out, "OK") })
	default:
		return fmt.Errorf("sem: unknown subcommand %q", sub)
	}
}

func (c *ctl) printSemStatus(st *semaphore.Status) {
	if !st.Exists {
		fmt.Fprintf(c.out, "%s: no such semaphore (created by its first acquire)\n", st.Name)
		return
	}
	fmt.Fprintf(c.out, "%s: %d/%d slots taken, %d waiting\n", st.Name, len(st.Holders), st.Limit, len(st.Waiters))
	now := time.Now()
	if len(st.Holders) > 0 {
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOLDER\tVALUE\tAGE\tTOKEN\tSTATE")
		for _, h := range st.Holders {
			state, token := "held", strconv.FormatInt(h.Token, 10)
			if h.Quarantined {
				state, token = "quarantined (lease lost)", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.Value, age(now, h.Since), token, state)
		}
		tw.Flush()
	}
	if len(st.Waiters) > 0 {
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tWAITER\tVALUE\tWAITING")
		for i, w := range st.Waiters {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, w.ID, w.Value, age(now, w.Since))
		}
		tw.Flush()
	}
}

func age(now, since time.Time) string {
	d := now.Sub(since)
	if d < 0 {
		d = 0 // another machine's clock
	}
	return d.Round(time.Second).String()
}
