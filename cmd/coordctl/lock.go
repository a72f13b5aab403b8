package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coordhq/coord/semaphore"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// exitCode makes coordctl exit with a code other than 1 (lock passes on its
// command's exit code).
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// lock runs a command while holding a slot of a semaphore:
//
//	coordctl lock [-n N] [--ttl S] [--id ID] [--kill-after D] NAME -- COMMAND [ARGS...]
func (c *ctl) lock(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	n := fs.Int("n", 1, "number of slots, used when the semaphore does not exist yet (1: a mutex)")
	ttl := fs.Int("ttl", 10, "session TTL in seconds: a crashed holder's slot is freed after TTL + quarantine")
	id := fs.String("id", "", "holder ID (default hostname-pid-lease); the same ID re-enters its own slot")
	killAfter := fs.Duration("kill-after", 10*time.Second, "after the slot is lost, SIGKILL the command this long after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 1 {
		return errors.New("lock: want NAME -- COMMAND [ARGS...]")
	}
	name, command := rest[0], rest[1:]
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	if len(command) == 0 {
		return errors.New("lock: no command after NAME --")
	}
	if *ttl < 1 {
		return fmt.Errorf("lock: --ttl %d: want at least 1 second", *ttl)
	}

	sess, err := concurrency.NewSession(c.cli, concurrency.WithTTL(*ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("lock: session: %w", err)
	}
	defer sess.Close()
	opts := []semaphore.Option{semaphore.WithLimit(*n)}
	if *id != "" {
		opts = append(opts, semaphore.WithHolderID(*id))
	}
	sem, err := semaphore.New(sess, name, opts...)
	if err != nil {
		return err
	}
	g, err := sem.TryAcquire(ctx)
	if errors.Is(err, semaphore.ErrNoSlot) {
		c.reportWaiting(ctx, name, *n)
		g, err = sem.Acquire(ctx)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := g.Release(rctx); err != nil && !errors.Is(err, semaphore.ErrNotHeld) {
			fmt.Fprintf(c.errOut, "coordctl: lock %s: release: %v (the slot is freed when the session's lease expires)\n", name, err)
		}
	}()
	return c.runHolding(g, command, *killAfter)
}

// reportWaiting tells the user why lock does not return at once.
func (c *ctl) reportWaiting(ctx context.Context, name string, n int) {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := semaphore.GetStatus(sctx, c.cli, name)
	if err != nil {
		fmt.Fprintf(c.errOut, "coordctl: waiting for a slot of %s\n", name)
		return
	}
	if st.Exists && st.Limit != n {
		fmt.Fprintf(c.errOut, "coordctl: %s has %d slot(s) (stored); -n %d only applies to a new semaphore (see sem set-limit)\n", name, st.Limit, n)
	}
	fmt.Fprintf(c.errOut, "coordctl: waiting for a slot of %s: %d/%d taken, %d waiting\n", name, len(st.Holders), st.Limit, len(st.Waiters))
}

// runHolding runs command while g is held. If the slot is lost, the command
// gets SIGTERM, then SIGKILL after killAfter. SIGINT and SIGTERM sent to
// coordctl are passed on to the command. It returns the command's exit code.
func (c *ctl) runHolding(g *semaphore.Grant, command []string, killAfter time.Duration) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.out, c.errOut
	cmd.Env = append(os.Environ(),
		"COORD_LOCK_TOKEN="+strconv.FormatInt(g.Token, 10),
		"COORD_LOCK_HOLDER="+g.HolderID)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var kill <-chan time.Time
	lost := g.Done()
	for {
		select {
		case err := <-exited:
			return exitStatus(err)
		case s := <-sigs:
			cmd.Process.Signal(s)
		case <-lost:
			lost = nil
			fmt.Fprintf(c.errOut, "coordctl: lock slot lost (token %d); sending SIGTERM to the command\n", g.Token)
			cmd.Process.Signal(syscall.SIGTERM)
			kill = time.After(killAfter)
		case <-kill:
			fmt.Fprintf(c.errOut, "coordctl: command still running %v after SIGTERM; sending SIGKILL\n", killAfter)
			cmd.Process.Kill()
		}
	}
}

// exitStatus turns a command's end into coordctl's exit: its code, or
// 128+signal as a shell reports a killed command.
func exitStatus(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128 + int(ws.Signal()))
	}
	return exitCode(ee.ExitCode())
}
