package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/coordhq/coord/worker"
)

// fleetlock steers a FleetLock group: coordctl fleetlock pause|resume GROUP.
// Its holders are a semaphore: coordctl sem status fleetlock-GROUP.
func (c *ctl) fleetlock(ctx context.Context, args []string) error {
	if len(args) != 2 || (args[0] != "pause" && args[0] != "resume") {
		return errors.New("fleetlock: want pause GROUP or resume GROUP")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	op := worker.PauseFleetLock
	if args[0] == "resume" {
		op = worker.ResumeFleetLock
	}
	if err := op(ctx, c.cli, args[1]); err != nil {
		return err
	}
	return c.emit(map[string]any{"group": args[1], "paused": args[0] == "pause"}, func() {
		fmt.Fprintf(c.out, "FleetLock group %s %sd\n", args[1], args[0])
	})
}
