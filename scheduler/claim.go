package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Claim is a worker's hold on a running run, bound to the worker's lease:
// a worker that dies loses its claims when its lease expires, and the
// scheduler queues those runs again.
type Claim struct {
	Worker  string    `json:"worker"`
	Started time.Time `json:"started"`
}

func claimsPrefix(job string) string { return Prefix + "claims/" + job + "/" }

func claimKey(job, runKey string) string {
	return claimsPrefix(job) + runKey[strings.LastIndexByte(runKey, '/')+1:]
}

// pendingRun is a run a worker may claim, as read at some revision.
type pendingRun struct {
	key string
	kv  *mvccpb.KeyValue
	run Run
}

// claimable reads the runs a worker may start now: pending, past their
// backoff, and of a job whose target the worker's labels match.
func claimable(ctx context.Context, cli *clientv3.Client, labels map[string]string, now time.Time) ([]pendingRun, map[string]*Job, error) {
	resp, err := cli.Get(ctx, Prefix+"runs/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	jobs := map[string]*Job{}
	var out []pendingRun
	for _, kv := range resp.Kvs {
		var r Run
		if json.Unmarshal(kv.Value, &r) != nil || r.State != RunPending || now.Before(r.NotBefore) {
			continue
		}
		j, ok := jobs[r.Job]
		if !ok {
			if j, err = GetJob(ctx, cli, r.Job); err != nil {
				j = nil // deleted meanwhile: its runs wait to be deleted too
			}
			jobs[r.Job] = j
		}
		if j == nil || !targets(j.Target, labels) {
			continue
		}
		out = append(out, pendingRun{key: string(kv.Key), kv: kv, run: r})
	}
	return out, jobs, nil
}

func targets(target string, labels map[string]string) bool {
	if target == "" {
		return true
	}
	k, v, _ := strings.Cut(target, "=")
	return labels[k] == v
}

// claim takes run p for worker under lease, enforcing the job's limit and
// policy in the same txn: it holds only if the run is still as read and no
// claim of the job was made since the count was read (deletions only lower
// it), so two workers can never exceed MaxConcurrent, nor run two runs of
// a forbid job. With policy replace, the claims of runs under way are
// deleted in the same txn: their workers stop their commands. It returns
// the claimed run, or nil if another worker or rule won.
func claim(ctx context.Context, cli *clientv3.Client, j *Job, p pendingRun, worker string, lease clientv3.LeaseID, now time.Time) (*Run, int64, error) {
	cresp, err := cli.Get(ctx, claimsPrefix(j.Name), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	limit := j.MaxConcurrent
	if j.Policy != PolicyAllow {
		limit = 1
	}
	var extra []clientv3.Op
	if len(cresp.Kvs) >= limit {
		if j.Policy != PolicyReplace {
			return nil, 0, nil
		}
		for _, kv := range cresp.Kvs {
			// The replaced run ends here, in the same txn: its worker's
			// claim goes (so it stops the command) and its record says why,
			// so that it is not taken for a run whose worker died.
			ck := string(kv.Key)
			rk := runsPrefix(j.Name) + ck[strings.LastIndexByte(ck, '/')+1:]
			rresp, err := cli.Get(ctx, rk)
			if err != nil {
				return nil, 0, err
			}
			extra = append(extra, clientv3.OpDelete(ck))
			if len(rresp.Kvs) == 1 {
				var old Run
				if json.Unmarshal(rresp.Kvs[0].Value, &old) == nil {
					old.State, old.Finished, old.Error = RunReplaced, now.UTC(), "replaced by the run of "+p.run.Scheduled.Format(time.RFC3339)
					extra = append(extra, clientv3.OpPut(rk, mustJSON(old)))
				}
			}
		}
	}
	r := p.run
	r.State, r.Worker, r.Started, r.Error = RunRunning, worker, now.UTC(), ""
	ck := claimKey(j.Name, p.key)
	ops := append([]clientv3.Op{
		clientv3.OpPut(ck, mustJSON(Claim{Worker: worker, Started: now.UTC()}), clientv3.WithLease(lease)),
		clientv3.OpPut(p.key, mustJSON(r)),
	}, extra...)
	txn, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(p.key), "=", p.kv.ModRevision),
		clientv3.Compare(clientv3.ModRevision(claimsPrefix(j.Name)), "<", cresp.Header.Revision+1).WithPrefix(),
	).Then(ops...).Commit()
	if err != nil || !txn.Succeeded {
		return nil, 0, err
	}
	return &r, txn.Header.Revision, nil
}

// finish records the end of a run, only while the worker's claim on it is
// the one it made (a worker that lost its claim records nothing). A failed
// attempt with retries left goes back to pending after the backoff.
func finish(ctx context.Context, cli *clientv3.Client, j *Job, key string, r Run, claimRev int64, now time.Time) error {
	ck := claimKey(j.Name, key)
	r.Finished = now.UTC()
	if r.State == RunFailed && r.Attempt <= j.Retries {
		backoff := time.Duration(j.Backoff) << (r.Attempt - 1)
		r.State, r.Attempt, r.NotBefore, r.Worker = RunPending, r.Attempt+1, now.Add(backoff).UTC(), ""
	}
	_, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ck), "=", claimRev)).
		Then(clientv3.OpPut(key, mustJSON(r)), clientv3.OpDelete(ck)).
		Commit()
	return err
}

// requeueOrphans puts back to pending, as the next attempt, every running
// run of job whose claim is gone (its worker died, its lease expired).
// The txn holds only if the run is unchanged and still has no claim.
func requeueOrphans(ctx context.Context, cli *clientv3.Client, job string, now time.Time) (int, error) {
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(runsPrefix(job), clientv3.WithPrefix()),
		clientv3.OpGet(claimsPrefix(job), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return 0, err
	}
	claimed := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		claimed[string(kv.Key)] = true
	}
	n := 0
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var r Run
		if json.Unmarshal(kv.Value, &r) != nil || r.State != RunRunning {
			continue
		}
		ck := claimKey(job, string(kv.Key))
		if claimed[ck] {
			continue
		}
		r.State, r.Attempt, r.Worker, r.Error = RunPending, r.Attempt+1, "", fmt.Sprintf("worker lost during attempt %d", r.Attempt)
		txn, err := cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(ck), "=", 0),
		).Then(clientv3.OpPut(string(kv.Key), mustJSON(r))).Commit()
		if err != nil {
			return n, err
		}
		if txn.Succeeded {
			n++
		}
	}
	return n, nil
}

// trimHistory deletes finished runs of job beyond the newest keep.
func trimHistory(ctx context.Context, cli *clientv3.Client, job string, keep int) error {
	resp, err := cli.Get(ctx, runsPrefix(job), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	finished := 0
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		kv := resp.Kvs[i]
		var r Run
		if json.Unmarshal(kv.Value, &r) != nil || !r.finished() {
			continue
		}
		finished++
		if finished > keep {
			if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(string(kv.Key))).Commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// runID is a run's id in the environment and in coordctl: job@unixnano.
func runID(key string) string {
	ts := key[strings.LastIndexByte(key, '/')+1:]
	n, _ := strconv.ParseInt(ts, 10, 64)
	return strconv.FormatInt(n, 10)
}
