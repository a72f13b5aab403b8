package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Run states.
const (
	RunPending   = "pending"   // waiting for a worker (again, after a failed attempt)
	RunRunning   = "running"   // claimed by a worker
	RunSucceeded = "succeeded" // the command exited 0
	RunFailed    = "failed"    // the command failed and no retry is left
	RunMissed    = "missed"    // its tick passed while no scheduler ran, beyond the starting deadline
	RunReplaced  = "replaced"  // stopped by a newer run (policy replace)
)

// Run is one execution of a job for one scheduled time.
type Run struct {
	Job       string    `json:"job"`
	Scheduled time.Time `json:"scheduled"`
	Attempt   int       `json:"attempt"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	// NotBefore delays a retry (backoff).
	NotBefore time.Time `json:"not_before,omitzero"`
	Worker    string    `json:"worker,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	ExitCode  int       `json:"exit_code"`
	Error     string    `json:"error,omitempty"`
	// Output is the tail of the command's output (at most OutputTail bytes).
	Output string `json:"output,omitempty"`
}

// OutputTail bounds the output kept with a run.
const OutputTail = 4 << 10

// Finished reports whether the run is over for good.
func (r Run) finished() bool {
	return r.State == RunSucceeded || r.State == RunFailed || r.State == RunMissed || r.State == RunReplaced
}

// maxFirePerTxn keeps a pass's txn well under the server's 128 operations.
const maxFirePerTxn = 40

// Fire creates the runs of job that are due at now, each exactly once:
// the runs and the job's next scheduled time are written in one txn that
// holds only if the next scheduled time is still the one this pass read.
// Two schedulers (a failover in the middle of a tick) cannot both create a
// run: one txn wins, the other finds nothing due. It returns the runs it
// created and the next scheduled time.
func Fire(ctx context.Context, cli *clientv3.Client, j *Job, now time.Time) (created []Run, next time.Time, err error) {
	sched, err := ParseSchedule(j.Schedule)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrBadJob, err)
	}
	for {
		resp, err := cli.Get(ctx, nextKey(j.Name))
		if err != nil {
			return nil, time.Time{}, err
		}
		guard := clientv3.Compare(clientv3.CreateRevision(nextKey(j.Name)), "=", 0)
		var from time.Time
		if len(resp.Kvs) == 1 {
			ns, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("scheduler: unreadable next time of %s: %w", j.Name, err)
			}
			from = time.Unix(0, ns)
			guard = clientv3.Compare(clientv3.ModRevision(nextKey(j.Name)), "=", resp.Kvs[0].ModRevision)
		} else {
			// First pass for this job: it starts with the first tick after now.
			from = sched.Next(now)
		}
		ticks := Due(sched, from, now, time.Duration(j.StartingDeadline))
		if j.Paused {
			// A paused job records nothing: its ticks pass.
			ticks.Missed, ticks.Fire, ticks.Skipped = nil, nil, 0
		}
		if len(ticks.Fire) > maxFirePerTxn {
			ticks.Missed = append(ticks.Missed, ticks.Fire[:len(ticks.Fire)-maxFirePerTxn]...)
			ticks.Fire = ticks.Fire[len(ticks.Fire)-maxFirePerTxn:]
		}
		if len(ticks.Missed) > maxFirePerTxn {
			ticks.Skipped += len(ticks.Missed) - maxFirePerTxn
			ticks.Missed = ticks.Missed[len(ticks.Missed)-maxFirePerTxn:]
		}
		ops := []clientv3.Op{clientv3.OpPut(nextKey(j.Name), strconv.FormatInt(ticks.Next.UnixNano(), 10))}
		if ticks.Skipped > 0 {
			// Too many missed ticks to record one by one: count them. The
			// guard on the next time makes this read-modify-write safe.
			sresp, err := cli.Get(ctx, skippedKey(j.Name))
			if err != nil {
				return nil, time.Time{}, err
			}
			n := 0
			if len(sresp.Kvs) == 1 {
				n, _ = strconv.Atoi(string(sresp.Kvs[0].Value))
			}
			ops = append(ops, clientv3.OpPut(skippedKey(j.Name), strconv.Itoa(n+ticks.Skipped)))
		}
		var runs []Run
		for _, t := range ticks.Missed {
			ops = append(ops, clientv3.OpPut(runKey(j.Name, t), mustJSON(Run{Job: j.Name, Scheduled: t.UTC(), State: RunMissed, Created: now.UTC()})))
		}
		for _, t := range ticks.Fire {
			r := Run{Job: j.Name, Scheduled: t.UTC(), Attempt: 1, State: RunPending, Created: now.UTC()}
			runs = append(runs, r)
			ops = append(ops, clientv3.OpPut(runKey(j.Name, t), mustJSON(r)))
		}
		txn, err := cli.Txn(ctx).If(guard).Then(ops...).Commit()
		if err != nil {
			return nil, time.Time{}, err
		}
		if txn.Succeeded {
			return runs, ticks.Next, nil
		}
		// Another scheduler moved this job on: read again.
	}
}

// Skipped returns how many ticks of job were missed beyond those recorded
// as missed runs.
func Skipped(ctx context.Context, cli *clientv3.Client, job string) (int, error) {
	resp, err := cli.Get(ctx, skippedKey(job))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	return strconv.Atoi(string(resp.Kvs[0].Value))
}

// ListRuns returns the runs of job, oldest first.
func ListRuns(ctx context.Context, cli *clientv3.Client, job string) ([]Run, error) {
	resp, err := cli.Get(ctx, runsPrefix(job), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	runs := make([]Run, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("scheduler: unreadable run at %q: %w", kv.Key, err)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data
	}
	return string(b)
}
