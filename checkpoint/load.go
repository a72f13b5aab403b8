package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// readBudget bounds the chunk bytes Load asks for in one range request.
	readBudget = 4 << 20
	// loadAttempts bounds how often Load starts again because the revision
	// it read at was compacted meanwhile.
	loadAttempts = 5
)

// Load returns the newest valid checkpoint of job: complete, with every
// chunk of the length its manifest says and the SHA-256 of the whole data
// equal to the manifest's. Load never returns torn or corrupt data. All
// chunks are read at the revision the manifests were read at, so a Save
// rotating checkpoints away meanwhile cannot tear the read; if that
// revision is compacted before the read ends, Load starts again.
//
// The result is one of:
//
//   - (newest, nil): the newest checkpoint is valid.
//   - (older, err) with errors.Is(err, ErrCorrupt), BOTH non-nil: the
//     newest checkpoints are torn or corrupt; older is the newest valid one
//     below them and err names each skipped checkpoint and why. A caller
//     that checks err first and stops is safe; one that may resume from an
//     older state uses the checkpoint and reports err.
//   - (nil, err) with errors.Is(err, ErrCorrupt): checkpoints exist but
//     none is valid.
//   - (nil, err) with errors.Is(err, ErrNotFound): the job has none.
//   - (nil, err) for any other failure (connection, context, bad name).
func (s *Store) Load(ctx context.Context, job string) (*Checkpoint, error) {
	k, err := newKeys(s.root, job)
	if err != nil {
		return nil, err
	}
	for range loadAttempts {
		var cp *Checkpoint
		cp, err = s.load(ctx, k)
		if !isCompacted(err) {
			if err != nil {
				err = fmt.Errorf("checkpoint: load job %q: %w", job, err)
			}
			return cp, err
		}
	}
	return nil, fmt.Errorf("checkpoint: load job %q: history compacted %d times while reading: %w", job, loadAttempts, err)
}

func (s *Store) load(ctx context.Context, k keys) (*Checkpoint, error) {
	from, end := k.manifests()
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	rev := resp.Header.Revision
	var skipped []error
	for _, kv := range resp.Kvs {
		seq, ok := k.seqOf(kv.Key)
		if !ok {
			skipped = append(skipped, fmt.Errorf("%w: key %q is not a manifest key", ErrCorrupt, kv.Key))
			continue
		}
		m, err := parseManifest(seq, kv.Value)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%w: seq %d: %w", ErrCorrupt, seq, err))
			continue
		}
		data, err := s.readChunks(ctx, k, m, rev)
		var bad *badData
		switch {
		case errors.As(err, &bad):
			skipped = append(skipped, fmt.Errorf("%w: seq %d: %s", ErrCorrupt, seq, bad.why))
			continue
		case err != nil:
			return nil, err
		}
		cp := &Checkpoint{Info: m.info(kv.ModRevision), Data: data}
		if len(skipped) > 0 {
			return cp, fmt.Errorf("fell back to seq %d: %w", seq, errors.Join(skipped...))
		}
		return cp, nil
	}
	return nil, fmt.Errorf("no valid checkpoint: %w", errors.Join(skipped...))
}

// badData says why the chunks of a checkpoint do not match its manifest.
type badData struct{ why string }

func (b *badData) Error() string { return b.why }

func badf(format string, args ...any) error { return &badData{fmt.Sprintf(format, args...)} }

// readChunks reads the chunks of m at rev and checks them against m. It
// returns a *badData if they do not match, or the error of the read.
func (s *Store) readChunks(ctx context.Context, k keys, m *manifest, rev int64) ([]byte, error) {
	data := make([]byte, 0, m.Size)
	end := k.chunk(m.Seq, m.Chunks)
	perRead := int64(max(1, readBudget/m.ChunkSize))
	for i := 0; i < m.Chunks; {
		resp, err := s.cli.Get(ctx, k.chunk(m.Seq, i), clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(perRead))
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, badf("chunk %d of %d missing", i, m.Chunks)
		}
		for _, kv := range resp.Kvs {
			if want := k.chunk(m.Seq, i); string(kv.Key) != want {
				return nil, badf("chunk %d of %d missing", i, m.Chunks)
			}
			if len(kv.Value) != m.chunkLen(i) {
				return nil, badf("chunk %d has %d bytes, want %d", i, len(kv.Value), m.chunkLen(i))
			}
			data = append(data, kv.Value...)
			i++
		}
	}
	sum := sha256.Sum256(data)
	if want, _ := hex.DecodeString(m.SHA256); !bytes.Equal(sum[:], want) {
		return nil, badf("SHA-256 %x, manifest says %s", sum, m.SHA256)
	}
	return data, nil
}

// List returns the Info of every checkpoint of job, oldest first, as the
// manifests record them; it does not read or check the chunks (Load does).
// A manifest it cannot read is left out and named in an error wrapping
// ErrCorrupt, returned together with the rest of the list.
func (s *Store) List(ctx context.Context, job string) ([]Info, error) {
	k, err := newKeys(s.root, job)
	if err != nil {
		return nil, err
	}
	from, end := k.manifests()
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list job %q: %w", job, err)
	}
	var infos []Info
	var skipped []error
	for _, kv := range resp.Kvs {
		seq, ok := k.seqOf(kv.Key)
		if !ok {
			skipped = append(skipped, fmt.Errorf("%w: key %q is not a manifest key", ErrCorrupt, kv.Key))
			continue
		}
		m, err := parseManifest(seq, kv.Value)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%w: seq %d: %w", ErrCorrupt, seq, err))
			continue
		}
		infos = append(infos, m.info(kv.ModRevision))
	}
	if len(skipped) > 0 {
		return infos, fmt.Errorf("checkpoint: list job %q: %w", job, errors.Join(skipped...))
	}
	return infos, nil
}

// isCompacted reports whether err is etcd's "required revision has been
// compacted", which the client turns into rpctypes.ErrCompacted.
func isCompacted(err error) bool {
	return errors.Is(err, rpctypes.ErrCompacted)
}
