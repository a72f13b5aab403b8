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
// Scheduler.Run is the elected loop that fires runs (election "scheduler");
// its passes also re-queue runs whose worker died (its claim, bound to the
// worker's lease, is gone) as the next attempt, and keep the last
// HistoryKept finished runs per job. Workers (Worker.Run) claim pending
// runs with a transaction that enforces the job's MaxConcurrent and policy
// (forbid: never two at once; replace: the claim deletes the running
// one's, whose worker stops its command), run the command with COORD_JOB,
// COORD_RUN and COORD_ATTEMPT, kill it at its timeout, keep the tail of its
// output, and retry failures with exponential backoff.
package scheduler
