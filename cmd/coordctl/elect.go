package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/coordhq/coord/election"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// elect campaigns, or observes:
//
//	coordctl elect [--ttl S] NAME VALUE   campaign; print the value once elected; hold until interrupted
//	coordctl elect --observe NAME         print each leader change until interrupted
func (c *ctl) elect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("elect", flag.ContinueOnError)
	observe := fs.Bool("observe", false, "print each leader change (\"<none>\" when there is no leader)")
	ttl := fs.Int("ttl", 10, "session TTL in seconds: a crashed leader is replaced after about this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if *observe {
		if len(rest) != 1 {
			return errors.New("elect --observe: want NAME")
		}
		return c.observe(ctx, rest[0])
	}
	if len(rest) != 2 {
		return errors.New("elect: want NAME VALUE (or --observe NAME)")
	}
	if *ttl < 1 {
		return fmt.Errorf("elect: --ttl %d: want at least 1 second", *ttl)
	}
	sess, err := concurrency.NewSession(c.cli, concurrency.WithTTL(*ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elect: session: %w", err)
	}
	defer sess.Close()
	e, err := election.New(sess, rest[0])
	if err != nil {
		return err
	}
	l, err := e.Campaign(ctx, rest[1])
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while waiting
		}
		return fmt.Errorf("elect %s: %w", rest[0], err)
	}
	if err := c.emit(map[string]any{"name": rest[0], "value": rest[1], "token": l.Token, "key": l.Key}, func() {
		fmt.Fprintln(c.out, rest[1])
	}); err != nil {
		return err
	}
	select {
	case <-ctx.Done(): // interrupted: hand the leadership on
		rctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		return l.Resign(rctx)
	case <-l.Done():
		return fmt.Errorf("elect %s: leadership lost (token %d)", rest[0], l.Token)
	}
}

func (c *ctl) observe(ctx context.Context, name string) error {
	events, err := election.Observe(ctx, c.cli, name)
	if err != nil {
		return err
	}
	for ev := range events {
		err := c.emit(ev, func() {
			if ev.NoLeader {
				fmt.Fprintln(c.out, "<none>")
			} else {
				fmt.Fprintln(c.out, ev.Leader.Value)
			}
		})
		if err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return errors.New("elect --observe: stream ended")
}
