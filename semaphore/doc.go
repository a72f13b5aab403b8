// Package semaphore is a counting semaphore on any etcd v3 endpoint (coordd
// or etcd), for throttling: at most N holders at once, fleet-wide.
//
// Guarantee: the number of taken slots never exceeds the limit stored with
// the semaphore, at any revision of the store, whatever crashes, partitions
// and leader changes happen, because every grant is a transaction that
// holds only if no slot was taken since the state it counted and the limit
// is unchanged. Every grant carries a fencing token (its key's create
// revision) that strictly increases across the grants of one semaphore, and
// a clientv3.Cmp that holds only while the grant is held. A holder whose
// session's lease is lost is told by Grant.Done and Grant.Context; because
// it may learn that late (it is cut off, or paused), its slot stays taken
// for a quarantine (default: the session's TTL, measured by the cluster
// with a lease) before anyone else gets it, unless the holder releases it
// or an operator force-releases it.
//
// Waiters are admitted in the order they asked (the create revision of
// their queue entry). Only the head of the queue watches the slots; every
// other waiter watches the one before it, so a release wakes O(1) waiters,
// not all of them. Acquiring again under a holder ID that holds a slot
// returns that grant; a holder whose lease expired takes its quarantined
// slot back at once (a node that rebooted mid-upgrade keeps its slot).
//
// Layout under the prefix (default "coord/semaphore/<name>/"):
//
//	g/<id>   grant, bound to the holder's lease; create revision = token
//	limit    number of slots, a decimal string
//	o/<id>   a taken slot (no lease): live while g/<id> exists, else quarantined
//	p/<id>   the running quarantine of o/<id>, bound to a lease of that TTL
//	q/<id>   queue entry, bound to the waiter's lease
//
// # Caveats
//
//   - A fencing token protects only the writes that check it: pass
//     Grant.Cmp to the store's transactions, or the token to a downstream
//     system that rejects smaller tokens.
//   - Holder IDs must name real holders. Two processes that use one ID are
//     one holder to the semaphore: they share its slot.
//   - A quarantine is a lower bound: it starts when the head waiter first
//     sees the expired grant and is measured by a lease, so it lasts at
//     least the server's minimum lease TTL and may last longer. With no
//     waiter, a quarantined slot stays until someone asks.
//   - The limit is read from the store. WithLimit only sets it when the
//     semaphore is created; change it with SetLimit. Lowering it below the
//     slots taken takes none away, and a holder that takes back its own
//     quarantined slot does so whatever the limit (it never left it).
//   - Every Acquire returns a Grant with a watch of its own (and a lease
//     check): Release or Forget each one, also those a re-entrant Acquire
//     returned.
//   - The writes of Acquire are bounded by their own timeout (5 s), not by
//     the caller's context, so that a write abandoned at the caller's
//     deadline cannot commit after Acquire cleaned up: Acquire may return up
//     to one write later than its context's deadline.
package semaphore
