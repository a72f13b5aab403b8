// Package checkpoint stores versioned checkpoints of long computations on
// any etcd v3 endpoint (coordd or etcd), so that a job resumes where it
// stopped after a crash, a reboot or a fail-over to another worker.
//
// Guarantee: a checkpoint is visible only complete and verified. Save
// writes the chunks first and the manifest last, in a transaction of its
// own; Load
// reads a checkpoint only through its manifest, at one revision, and checks
// every chunk's length and the SHA-256 of the whole data, so Load never
// returns torn or corrupt data (when the newest checkpoint is bad it
// returns the newest valid older one together with an error wrapping
// ErrCorrupt: see Store.Load). Every write of a Save holds only if the
// caller's guards hold (a semaphore grant's or an election's
// clientv3.Cmp), so a Save with guards makes nothing visible unless they
// held at the moment of the manifest's transaction, and a fenced-out
// writer stops at its next chunk. Sequence numbers of a job strictly
// increase (until the job is deleted): a manifest is published only while
// none with the same or a higher number exists.
//
// Layout under the root prefix R (default "coord/checkpoint/"), with seq
// zero-padded to 20 digits and the chunk index to 8:
//
//	R<job>/m/<seq>            manifest: JSON with version, seq, size,
//	                          chunks, chunk size, SHA-256, created, meta
//	R<job>/d/<seq>/<index>    chunk <index> of checkpoint <seq>
//
// Chunks of a Save that stopped before its manifest (a crash, a failed
// guard) are invisible garbage; the next Save of the job deletes them
// before it writes, and the transaction that publishes a manifest deletes
// every checkpoint, complete or not, below the last K.
//
// Loop runs a computation in steps, saves every interval or every n steps,
// and resumes from the newest checkpoint when it starts.
//
// # Caveats
//
//   - Steps between two checkpoints run again after a crash: they must be
//     idempotent, or their effects outside the state must be checked by
//     the step (with the fencing token of the writer's grant, for example).
//   - A checkpoint holds at most MaxSize (64 MiB) of data; Save returns
//     ErrTooLarge beyond that. Large checkpoints cost that much in the
//     store's history until it is compacted.
//   - Only the last K checkpoints of a job are kept (WithKeep, default 3).
//     With K = 1, Load has nothing to fall back to if the newest is
//     corrupt.
//   - A Save whose connection fails during the manifest's transaction may
//     or may not have published; List tells. Retrying writes another
//     checkpoint with the next sequence number.
//   - One job has one writer at a time: that is what guards are for. Two
//     writers of one job that overlap never tear a checkpoint, but the
//     later one to start writing wins and the other fails with
//     ErrConflict; writers that retry at once can starve each other.
//   - After Delete, sequence numbers of the job start at 1 again.
package checkpoint
