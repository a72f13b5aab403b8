// Package worker is the fleet agent's library: the rolling-upgrade agent
// (Agent), the rollout control plane an operator drives (StartRollout,
// PauseRollout, ResumeRollout, AbortRollout, ReportFailure), the node
// registry (Register, ListNodes) and the FleetLock server that Fedora
// CoreOS's Zincati asks for reboot slots (FleetLock).
//
// It is built on the coordination primitives over clientv3 only, so it
// works against coordd or any etcd v3 cluster.
//
// Guarantee: at no moment do more nodes of a group run an upgrade than the
// rollout's MaxParallel, through agent crashes, reboots and restarts,
// because a node upgrades only while it holds a slot of the group's
// semaphore, and that slot is persistent: owned by the node id, not by the
// agent's session, so a node that crashes or reboots mid-upgrade keeps it
// until it comes back and finishes. Every finished step (drain, upgrade,
// reboot, health, undrain) is recorded in a checkpoint written only while
// the slot is held; a restarted agent skips finished steps and runs the
// interrupted one again. A node whose health check fails keeps its slot
// and counts against the failure budget; past it, the rollout halts for
// every node until an operator resumes or aborts it.
//
// Layout (group G, node N):
//
//	coord/nodes/G/N                  the node, bound to its agent's lease
//	coord/rollout/G/spec             the rollout: version, parallelism, budget, state
//	coord/rollout/G/failed/N         a node that failed in this rollout
//	coord/rollout/G/last-start       when the last upgrade started (min-interval)
//	coord/semaphore/rollout-G/...    the group's slots (package semaphore)
//	coord/checkpoint/rollout-G-N/... the node's progress (package checkpoint)
//	coord/semaphore/fleetlock-G/...  FleetLock group G's reboot slots
//
// # Caveats
//
//   - Commands must be idempotent: an interrupted step runs again.
//   - A reboot step counts as done once its command was started: the agent
//     that comes back after the reboot goes on with the health check.
//   - A node that never comes back keeps its slot: release it with
//     `coordctl sem release rollout-G N` (or fleetlock-G for FleetLock).
//   - Resuming a halted rollout clears its failure count; failed nodes retry
//     the step that failed.
//   - Windows and min-interval compare the agents' clocks: keep them in sync.
package worker
