// Package coord is the coordd server: a Raft-replicated kvstore behind the
// etcd v3 gRPC API (KV, Watch, Lease, Maintenance, Cluster, gRPC health),
// so that etcdctl, clientv3 and its concurrency package work against it
// unchanged.
//
// # Guarantees
//
// A write is acknowledged only after a quorum has it in its raft log,
// fsynced (raft-wal; data dirs made before it keep raft-boltdb), and the
// leader has applied it: a write that returned OK survives kill -9 of every
// member. A leader with followers replicates entries while it writes them,
// but neither applies nor tells followers as committed anything above what
// it has on disk, so every applied entry is on a quorum's disks. Reads are
// linearizable by default: the leader takes the commit index, confirms it
// still leads (one confirmation for every read waiting at that moment; none
// when it is the only voter, as no one else can be elected) and serves once
// its store has applied that index; a new leader serves none before it has
// committed an entry in its term. A
// follower asks the leader for its revision at a confirmed moment (one call
// for every read waiting) and serves from its own store once it has caught
// up. Serializable reads are served by any member from its own store.
// Followers forward writes and lease calls to the leader and serve watches
// themselves; a member's reads and new watches wait for the writes it
// forwarded and acknowledged, so a client reads its own writes on the member
// it talks to. Lease expiry is decided by the leader's clock, only after it
// confirms it still leads, and applied as a revoke through the log; a new
// leader first gives every lease a full TTL. A keep-alive is answered by a
// leader whose leadership a quorum confirmed less than half an election
// timeout ago (a leader lease: no other leader can be elected within a
// whole one); linearizable reads never rest on clocks. A follower campaigns
// no earlier than one election timeout after it last heard from the leader,
// and a member restarted on its data accepts no raft connection for an
// election timeout. When a write comes alone, the leader commits a barrier
// to tell followers its commit index at once. The leader answers a txn
// whose compares choose a branch without writes as a linearizable read,
// without a log entry; the answer is the one the log would give. Every
// answer and error is etcd's (see tests/compat, which compares coordd with
// etcd 3.7.3 response for response). docs/server.md has the decisions behind
// these.
//
// Members find each other by gossip (hashicorp/memberlist). With
// BootstrapExpect N the first N members to see each other bootstrap raft
// together; the leader adds members gossip finds and removes members that
// leave gracefully (SIGTERM). A member restarted on its data dir rejoins as
// itself; one restarted with an empty data dir never bootstraps while a
// cluster exists, and the leader takes its old self out of the
// configuration and adds it anew.
//
// # Where it differs from etcd
//
//   - Space: the quota compares the store's accounted size (keys, values
//     and a per-version overhead, all in memory), not a bbolt file. The
//     NOSPACE alarm follows that size: it clears itself once compaction
//     brings the size back under the quota, so disarming it changes nothing.
//   - Maintenance.Snapshot streams coordd's own snapshot format (versioned,
//     checksummed), which etcdctl snapshot restore cannot read. Hash and
//     HashKV hash that encoding (there is no bbolt file); HashKV ignores the
//     requested revision and hashes the current one. Defragment does
//     nothing: there is nothing to defragment.
//   - Membership is by gossip: MemberAdd, MemberUpdate and MemberPromote
//     answer Unimplemented with the reason; MemberRemove works.
//   - Lease IDs chosen by the server (ID 0) come from a counter, not at
//     random; Leases lists by ID, not by expiry.
//   - TLS and auth are not implemented.
//
// # Caveats
//
// The whole history since the last compaction is held in memory; run with
// auto-compaction. A member started without --join and with
// BootstrapExpect 1 is a new single-member cluster, whatever it was before:
// members of a cluster should list the others in --join.
package coord
