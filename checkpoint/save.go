package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Save writes data as the newest checkpoint of job and returns its Info.
// See SaveMeta.
func (s *Store) Save(ctx context.Context, job string, data []byte, guards ...clientv3.Cmp) (Info, error) {
	return s.SaveMeta(ctx, job, data, nil, guards...)
}

// SaveMeta writes data, with the user metadata meta, as the newest
// checkpoint of job, numbered the newest sequence number plus one, and
// returns its Info.
//
// Every write Save makes holds only if every guard holds (for example a
// semaphore grant's or an election's compare), so a writer that lost what
// its guards stand for stops at its next write. The checkpoint becomes
// visible in one transaction, the last, that writes its manifest, removes
// the checkpoints beyond the last K, and holds only if the guards hold and
// no checkpoint with this or a higher sequence number exists. If Save
// returns an error, no checkpoint became visible, with one exception: an
// error of the connection (not ErrGuardFailed or ErrConflict) during that
// last transaction leaves it unknown whether it committed; List tells.
//
// Save returns an error wrapping ErrGuardFailed if a guard failed,
// ErrConflict if a concurrent Save or Delete of the job won, ErrTooLarge if
// data exceeds MaxSize or meta MaxMetaSize, ErrBadJob for a bad job name.
// Chunks written before a failure stay, invisible, until the next Save of
// the job removes them.
func (s *Store) SaveMeta(ctx context.Context, job string, data []byte, meta map[string]string, guards ...clientv3.Cmp) (Info, error) {
	k, err := newKeys(s.root, job)
	if err != nil {
		return Info{}, err
	}
	if len(data) > MaxSize {
		return Info{}, fmt.Errorf("%w: job %q: %d bytes of data, at most %d", ErrTooLarge, job, len(data), MaxSize)
	}
	n := 0
	for key, v := range meta {
		n += len(key) + len(v)
	}
	if n > MaxMetaSize {
		return Info{}, fmt.Errorf("%w: job %q: %d bytes of metadata, at most %d", ErrTooLarge, job, n, MaxMetaSize)
	}
	w := &writer{s: s, k: k, data: data, guards: guards, meta: maps.Clone(meta)}
	info, err := w.save(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("checkpoint: save job %q: %w", job, err)
	}
	return info, nil
}

// writer is one Save in progress.
//
// Save claims a sequence number by writing its chunk 0, in a transaction
// that also clears every chunk at that number and above (the garbage of
// writers that stopped before publishing). The claim's revision is the
// writer's token: chunk 0 keeps that mod revision until someone else
// claims the number or deletes the job, so every later write compares it
// and a writer that lost its claim writes nothing more. Together with "no
// manifest at seq or above", this makes every chunk under a published
// manifest one that its writer wrote.
type writer struct {
	s      *Store
	k      keys
	data   []byte
	meta   map[string]string
	guards []clientv3.Cmp

	seq       int64 // the sequence number being written
	dropBelow int64 // checkpoints below this one go with the publish; 0: none
	man       manifest
	manJSON   []byte
	token     int64 // revision of the claim; chunk 0's mod revision while ours
}

func (w *writer) save(ctx context.Context) (Info, error) {
	if err := w.plan(ctx); err != nil {
		return Info{}, err
	}
	if w.man.Chunks == 1 {
		// Claim and publish at once: nothing to write in between.
		ops := append(w.claimOps(), w.publishOps()...)
		resp, err := w.txn(ctx, w.cmps(w.free()), ops)
		if err != nil {
			return Info{}, fmt.Errorf("seq %d: %w", w.seq, err)
		}
		return w.man.info(resp.Header.Revision), nil
	}
	resp, err := w.txn(ctx, w.cmps(w.free()), w.claimOps())
	if err != nil {
		return Info{}, fmt.Errorf("seq %d: claim: %w", w.seq, err)
	}
	w.token = resp.Header.Revision
	for i := 1; i < w.man.Chunks; i++ {
		put := clientv3.OpPut(w.k.chunk(w.seq, i), string(w.chunkData(i)))
		if _, err := w.txn(ctx, w.cmps(w.mine()), []clientv3.Op{put}); err != nil {
			return Info{}, fmt.Errorf("seq %d: chunk %d: %w", w.seq, i, err)
		}
	}
	resp, err = w.txn(ctx, w.cmps(w.free(), w.mine()), w.publishOps())
	if err != nil {
		return Info{}, fmt.Errorf("seq %d: publish: %w", w.seq, err)
	}
	return w.man.info(resp.Header.Revision), nil
}

// plan reads which checkpoints exist and decides the sequence number, the
// checkpoints the publish removes, and the manifest.
func (w *writer) plan(ctx context.Context) error {
	from, end := w.k.manifests()
	resp, err := w.s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	var seqs []int64 // ascending: key order is numeric order
	for _, kv := range resp.Kvs {
		if seq, ok := w.k.seqOf(kv.Key); ok {
			seqs = append(seqs, seq)
		}
	}
	w.seq = 1
	if len(seqs) > 0 {
		w.seq = seqs[len(seqs)-1] + 1
	}
	// Keep the newest keep-1 of those and the new one.
	if old := len(seqs) - (w.s.keep - 1); old > 0 {
		w.dropBelow = w.seq
		if w.s.keep > 1 {
			w.dropBelow = seqs[old]
		}
	}
	sum := sha256.Sum256(w.data)
	w.man = manifest{
		Version:   manifestVersion,
		Seq:       w.seq,
		Size:      int64(len(w.data)),
		Chunks:    chunkCount(int64(len(w.data)), w.s.chunkSize),
		ChunkSize: w.s.chunkSize,
		SHA256:    hex.EncodeToString(sum[:]),
		Created:   w.s.now().Round(0),
		Meta:      w.meta,
	}
	w.manJSON, err = json.Marshal(&w.man)
	return err // a clock outside years 0-9999
}

func (w *writer) chunkData(i int) []byte {
	lo := i * w.man.ChunkSize
	return w.data[lo : lo+w.man.chunkLen(i)]
}

// free holds while no manifest exists at w.seq or above.
func (w *writer) free() clientv3.Cmp {
	_, end := w.k.manifests()
	return clientv3.Compare(clientv3.CreateRevision(w.k.manifest(w.seq)), "=", 0).WithRange(end)
}

// mine holds while chunk 0 is the one this writer's claim wrote.
func (w *writer) mine() clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(w.k.chunk(w.seq, 0)), "=", w.token)
}

// cmps returns the guards followed by extra, in a new slice: the caller's
// slice is never appended to.
func (w *writer) cmps(extra ...clientv3.Cmp) []clientv3.Cmp {
	return slices.Concat(w.guards, extra)
}

// claimOps clear every chunk at w.seq and above and write chunk 0. The
// clear range starts after chunk 0: etcd rejects a txn that puts a key it
// also deletes.
func (w *writer) claimOps() []clientv3.Op {
	_, end := w.k.chunks()
	return []clientv3.Op{
		clientv3.OpDelete(w.k.chunk(w.seq, 1), clientv3.WithRange(end)),
		clientv3.OpPut(w.k.chunk(w.seq, 0), string(w.chunkData(0))),
	}
}

// publishOps write the manifest and remove the manifests and chunks below
// the oldest checkpoint kept, complete or not.
func (w *writer) publishOps() []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpPut(w.k.manifest(w.seq), string(w.manJSON))}
	if w.dropBelow > 0 {
		mFrom, _ := w.k.manifests()
		dFrom, _ := w.k.chunks()
		ops = append(ops,
			clientv3.OpDelete(mFrom, clientv3.WithRange(w.k.manifest(w.dropBelow))),
			clientv3.OpDelete(dFrom, clientv3.WithRange(w.k.chunkDir(w.dropBelow))))
	}
	return ops
}

// txn commits ops if cmps hold. When they do not, it tells a failed guard
// (ErrGuardFailed) from a lost race (ErrConflict) by evaluating the guards
// again in the else branch, at the same revision.
func (w *writer) txn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	var orElse []clientv3.Op
	if len(w.guards) > 0 {
		orElse = []clientv3.Op{clientv3.OpTxn(w.guards, nil, nil)}
	}
	resp, err := w.s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
	switch {
	case err != nil:
		return nil, err
	case resp.Succeeded:
		return resp, nil
	case len(orElse) > 0 && !resp.Responses[0].GetResponseTxn().GetSucceeded():
		return nil, ErrGuardFailed
	}
	return nil, ErrConflict
}
