// Package election is leader election on any etcd v3 endpoint (coordd or
// etcd): campaign, resign, proclaim a value (an address, say), find and
// observe the leader, and Run, the campaign-lead-resign loop of a process
// that must lead to work, with a new session whenever the last one is lost.
//
// Guarantee: at any revision of the store at most one candidate is the
// leader, the one whose key has the smallest create revision, and a
// Leadership is returned only after one read showed its key existing with
// no earlier one, so it is never handed out for a key that is already gone
// (which etcd's Election.Campaign can do, issue 19597). The fencing token
// (the leader key's create revision) strictly increases across successive
// leaders. Leadership.Done closes when the leadership is lost: resigned,
// its key deleted, or its session's lease lost. A leader cut off from the
// cluster, or paused, learns of the loss only when its client's lease
// deadline passes (the session's TTL after the last answered keep-alive),
// while the cluster may already have elected another: guard every write
// that only the leader may make with Leadership.Cmp, or pass the token to
// a system that rejects smaller ones.
//
// The keys are etcd's concurrency.Election's, so etcd's own recipe and
// `etcdctl elect` take part in the same elections: election name under
// root R (default DefaultPrefix) keeps each candidate at
//
//	R<name>/<lease ID in hex>   value = the candidate's value, bound to its lease
//
// A waiting candidate watches only the key just before its own (by create
// revision) and its own key, so a resignation wakes one candidate, not all
// of them.
//
// # Caveats
//
//   - A fencing token protects only the writes that check it: pass
//     Leadership.Cmp to the transactions that need the leadership, or the
//     token to a downstream system that rejects smaller tokens.
//   - One session is one candidate per election: Campaigns of one session
//     share its key (a second Campaign takes it over, with its value and
//     place), and resigning either leadership resigns both.
//   - The leader is chosen by create revision only: a candidate that
//     re-campaigns after its session was lost queues at the back.
//   - Observe sends the latest state to a reader that falls behind, not
//     every one in between; and an observer connected to a member cut off
//     from the cluster sees nothing new until the member is back (etcd
//     cancels its watches, because Observe asks for a leader; coordd keeps
//     them).
//   - Election names are one key segment (no '/'), so that one election's
//     keys never fall under another's prefix. Put hierarchy in WithPrefix.
package election
