package harness

import "errors"

// Errors the harness reports a run with.
var (
	// errExitedEarly says a member exited before the cluster was ready,
	// most likely because a port found free was taken in between.
	errExitedEarly = errors.New("harness: member exited before the cluster was ready")
	// errNoOps says a workload run had no successful operation at all.
	errNoOps = errors.New("harness: no operation succeeded")
	// errWrongRead says a read did not return what was written.
	errWrongRead = errors.New("harness: read did not return the value written")
	// errWatchClosed says a watch ended before it was created.
	errWatchClosed = errors.New("harness: watch closed before it was created")
	// errCrashed says a server process exited on its own during a run.
	errCrashed = errors.New("harness: server exited during the run")
	// errNotRecovered says a cluster did not recover within the timeout.
	errNotRecovered = errors.New("harness: cluster did not recover in time")
)
