// Package harness runs coordd and etcd side by side, as child processes on
// 127.0.0.1, under the same client workloads, and compares them. It is
// what cmd/bench runs; it works on Linux only (it reads /proc).
//
// Run it from the bench directory:
//
//	go run ./cmd/bench --quick     # about 3 minutes on 2 cores, builds included
//	go run ./cmd/bench             # full: 10 s per workload, 1 and 3 nodes, 1M keys
//	go run ./cmd/bench --only=put-256,leader-kill --nodes=3 --runs=5 --json out.json
//
// It builds coordd (from this repository) and etcd (cmd/etcd, at the
// version bench/go.mod pins) unless --coordd-bin and --etcd-bin are given.
// Progress goes to stderr; the report, a markdown table of medians and
// ratios coordd/etcd against the targets, goes to stdout.
//
// A Case is one workload on one cluster size. Run starts a fresh cluster
// for every (run, case, system), in a temporary directory it removes
// afterwards, so that a server's peak RSS (VmHWM) belongs to that workload
// alone; it kills the cluster when the workload ends, and on SIGINT. Within
// a run coordd goes first on odd runs and etcd on even ones. Both servers
// get the same raft settings (heartbeat 100 ms, election timeout 1 s, a
// snapshot every 10,000 entries) and fsync as they do by default.
//
// The workloads, all with the etcd v3 Go client, 256-byte random values,
// and a timeout on every request:
//
//	put-1          sequential puts from one client: latency
//	put-256        256 clients over 16 connections: write throughput
//	range-lin-256  linearizable point gets of preloaded keys, 256 clients
//	range-ser-256  the same, serializable
//	txn-64         If(mod revision = last seen) Then(put) Else(get), 64 clients on 1000 shared keys
//	lease-64       64 clients, one lease and one keep-alive stream each, renewing
//	               back to back on the stream (as etcd's benchmark tool does)
//	watch-1000     1000 watchers of one prefix, 20 puts/s: events/s, put-to-event latency
//	semaphore-100  100 contenders acquire/release a 3-slot coord semaphore: cycles/s
//	coordination   session open/close, mutex lock/unlock, election campaign/resign
//	load-1m        load 1M keys (100k with --quick) in 100-put txns: keys/s and
//	               peak RSS; kill -9, restart, time to a linearizable get
//	leader-kill    3 nodes under writes; kill -9 the leader; time to the next write
//
// Metrics: "throughput ops/s" counts requests, except events for watch-1000,
// acquire/release cycles for semaphore-100 and keys for load-1m; p50 and
// p99 are of the successful operations (txns for load-1m). "CPU s" is the
// servers' user+system time over the measured phase (after any preload),
// summed over members; "peak RSS MiB" is the largest member's VmHWM over
// its whole life.
//
// # Caveats
//
//   - Clients and servers share the machine: on few cores the load
//     generator competes with the server for CPU, which caps both systems
//     alike and compresses their ratio. Anything else running on the
//     machine skews the numbers; the report prints the load average.
//   - Latencies are those of closed loops: a slower server also lowers the
//     offered load, so read p99 together with throughput.
//   - The --quick runs last 0.6 s each: their medians are indicative, not
//     precise.
//   - leader-kill's resolution is 10 ms: it starts a write through every
//     member each 10 ms, whatever the earlier ones do (writes to a member
//     without a leader may hang until their 1 s timeout). Its "failed
//     writes" count those that failed fast as well as those that timed out.
package harness
