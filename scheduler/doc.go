// Package scheduler runs cron jobs (robfig/cron/v3 specs, with seconds and
// @every) on any etcd v3 endpoint: jobs, their schedule position and their
// runs live in the store, so any scheduler can take over from another.
//
// Guarantee: every scheduled time of a job produces at most one run, also
// when two schedulers overlap (a failover in the middle of a tick), because
// the runs of a pass and the job's next scheduled time are written in one
// transaction that holds only if the next scheduled time is still the one
// the pass read. A tick that passes while no scheduler runs is started
// late if it is within the job's starting deadline, and recorded as missed
// otherwise.
//
// Scheduler.Run is the elected loop that fires runs (election "scheduler").
// Not yet built: workers claiming runs (with max-concurrent and the concurrency policy in
// the claim's transaction), retries, timeouts, output tails, re-queue of
// runs whose worker died, bounded run history, and coordctl job commands.
package scheduler
