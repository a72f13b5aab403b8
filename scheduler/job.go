package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is where the scheduler keeps its state:
//
//	Prefix + "jobs/<job>"                 the job's spec
//	Prefix + "next/<job>"                 the next scheduled time not yet fired (unix ns)
//	Prefix + "skipped/<job>"              missed ticks too many to record one by one
//	Prefix + "runs/<job>/<unix ns>"       one run per scheduled time
const Prefix = "coord/scheduler/"

// Concurrency policies, as Kubernetes CronJob names them.
const (
	PolicyAllow   = "allow"   // runs of the job may overlap, up to MaxConcurrent
	PolicyForbid  = "forbid"  // a run is not started while another runs
	PolicyReplace = "replace" // a new run stops the one that runs
)

var (
	// ErrBadJob is returned for a job spec that cannot run.
	ErrBadJob = errors.New("scheduler: bad job")
	// ErrNoJob is returned for a job that does not exist.
	ErrNoJob = errors.New("scheduler: no such job")
)

// Job is a command run on a cron schedule.
type Job struct {
	Name     string   `json:"name"`
	Schedule string   `json:"schedule"` // robfig/cron: 5 or 6 fields (seconds first), or @every/@daily...
	Command  []string `json:"command"`
	// MaxConcurrent bounds the job's runs at once (default 1).
	MaxConcurrent int    `json:"max_concurrent"`
	Policy        string `json:"policy"` // allow, forbid (default) or replace
	Retries       int    `json:"retries"`
	// Backoff is the pause before the first retry; it doubles after each.
	Backoff Duration `json:"backoff"`
	Timeout Duration `json:"timeout,omitempty"`
	// StartingDeadline: a tick that could not fire within this long (no
	// scheduler ran) is recorded as missed instead of run late. 0 means a
	// late tick is run however late, but only the newest missed one.
	StartingDeadline Duration `json:"starting_deadline,omitempty"`
	// Target, "label=value", limits the job to workers with that label.
	Target string `json:"target,omitempty"`
	Paused bool   `json:"paused,omitempty"`
}

// Duration is a time.Duration written as "1m30s" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// parser reads robfig/cron specs with an optional seconds field and the
// @descriptors (@every 10s, @hourly, ...).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a job's schedule.
func ParseSchedule(spec string) (cron.Schedule, error) { return parser.Parse(spec) }

// Validate checks the job and fills its defaults.
func (j *Job) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadJob, fmt.Sprintf(format, args...))
	}
	if j.Name == "" || len(j.Name) > 128 || strings.ContainsFunc(j.Name, func(r rune) bool { return r == '/' || unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return bad("name %q: want 1 to 128 characters, no '/', spaces or control characters", j.Name)
	}
	if _, err := ParseSchedule(j.Schedule); err != nil {
		return bad("schedule %q: %v", j.Schedule, err)
	}
	if len(j.Command) == 0 {
		return bad("no command")
	}
	if j.MaxConcurrent == 0 {
		j.MaxConcurrent = 1
	}
	if j.Policy == "" {
		j.Policy = PolicyForbid
	}
	switch {
	case j.MaxConcurrent < 0:
		return bad("max concurrent %d", j.MaxConcurrent)
	case j.Policy != PolicyAllow && j.Policy != PolicyForbid && j.Policy != PolicyReplace:
		return bad("concurrency policy %q: want allow, forbid or replace", j.Policy)
	case j.Retries < 0 || j.Backoff < 0 || j.Timeout < 0 || j.StartingDeadline < 0:
		return bad("negative retries or duration")
	}
	if j.Target != "" {
		if k, _, ok := strings.Cut(j.Target, "="); !ok || k == "" {
			return bad("target %q: want label=value", j.Target)
		}
	}
	return nil
}

func jobKey(name string) string     { return Prefix + "jobs/" + name }
func nextKey(name string) string    { return Prefix + "next/" + name }
func skippedKey(name string) string { return Prefix + "skipped/" + name }
func runsPrefix(name string) string {
	return Prefix + "runs/" + name + "/"
}

// runKey orders runs by scheduled time: unix nanoseconds, zero-padded.
func runKey(name string, scheduled time.Time) string {
	return fmt.Sprintf("%s%020d", runsPrefix(name), scheduled.UnixNano())
}

// CreateJob stores a new job; it fails if the name is taken.
func CreateJob(ctx context.Context, cli *clientv3.Client, j Job) (*Job, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(jobKey(j.Name)), "=", 0)).
		Then(clientv3.OpPut(jobKey(j.Name), string(b))).
		Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: job %q exists", ErrBadJob, j.Name)
	}
	return &j, nil
}

// GetJob reads a job.
func GetJob(ctx context.Context, cli *clientv3.Client, name string) (*Job, error) {
	resp, err := cli.Get(ctx, jobKey(name))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	var j Job
	if err := json.Unmarshal(resp.Kvs[0].Value, &j); err != nil {
		return nil, fmt.Errorf("scheduler: unreadable job %q: %w", name, err)
	}
	return &j, nil
}

// ListJobs reads every job, by name.
func ListJobs(ctx context.Context, cli *clientv3.Client) ([]Job, error) {
	resp, err := cli.Get(ctx, Prefix+"jobs/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	return decodeJobs(resp.Kvs)
}

func decodeJobs(kvs []*mvccpb.KeyValue) ([]Job, error) {
	jobs := make([]Job, 0, len(kvs))
	for _, kv := range kvs {
		var j Job
		if err := json.Unmarshal(kv.Value, &j); err != nil {
			return nil, fmt.Errorf("scheduler: unreadable job at %q: %w", kv.Key, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// DeleteJob deletes a job, its schedule position and its run history.
func DeleteJob(ctx context.Context, cli *clientv3.Client, name string) error {
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpDelete(jobKey(name)),
		clientv3.OpDelete(nextKey(name)),
		clientv3.OpDelete(skippedKey(name)),
		clientv3.OpDelete(runsPrefix(name), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return err
	}
	if resp.Responses[0].GetResponseDeleteRange().Deleted == 0 {
		return fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	return nil
}

// SetPaused pauses or resumes a job: a paused job's ticks pass without runs.
func SetPaused(ctx context.Context, cli *clientv3.Client, name string, paused bool) (*Job, error) {
	for {
		resp, err := cli.Get(ctx, jobKey(name))
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("%w: %q", ErrNoJob, name)
		}
		var j Job
		if err := json.Unmarshal(resp.Kvs[0].Value, &j); err != nil {
			return nil, fmt.Errorf("scheduler: unreadable job %q: %w", name, err)
		}
		j.Paused = paused
		b, _ := json.Marshal(j)
		txn, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(jobKey(name)), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(jobKey(name), string(b))).
			Commit()
		if err != nil {
			return nil, err
		}
		if txn.Succeeded {
			return &j, nil
		}
	}
}

// RunNow queues a run of job for now, outside its schedule.
func RunNow(ctx context.Context, cli *clientv3.Client, name string, now time.Time) (*Run, error) {
	if _, err := GetJob(ctx, cli, name); err != nil {
		return nil, err
	}
	r := Run{Job: name, Scheduled: now.UTC(), Attempt: 1, State: RunPending, Created: now.UTC()}
	key := runKey(name, now)
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(r))).
		Commit()
	if err != nil {
		return nil, err
	}
	if !txn.Succeeded {
		return nil, fmt.Errorf("scheduler: a run of %s for %v exists", name, now)
	}
	return &r, nil
}
