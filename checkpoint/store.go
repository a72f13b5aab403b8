package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// DefaultPrefix is the root key prefix of every job unless WithPrefix
	// says otherwise.
	DefaultPrefix = "coord/checkpoint/"
	// DefaultKeep is how many checkpoints of a job are kept unless WithKeep
	// says otherwise.
	DefaultKeep = 3
	// DefaultChunkSize is the size of one stored value unless WithChunkSize
	// says otherwise: 1 MiB, below the 1.5 MiB request limit of coordd and
	// etcd.
	DefaultChunkSize = 1 << 20
	// MaxSize is the largest checkpoint Save accepts: 64 MiB.
	MaxSize = 64 << 20
	// MaxMetaSize bounds the user metadata of one checkpoint, keys and
	// values together, so the manifest stays a small value.
	MaxMetaSize = 64 << 10
)

var (
	// ErrNotFound is returned by Load when the job has no checkpoint.
	ErrNotFound = errors.New("checkpoint: no checkpoint")
	// ErrCorrupt is wrapped by the error of Load and List when a checkpoint
	// is torn, corrupted or unreadable by this version. Load may return it
	// together with an older, valid checkpoint: see Store.Load.
	ErrCorrupt = errors.New("checkpoint: corrupt checkpoint")
	// ErrGuardFailed is returned by Save and Delete when a guard did not
	// hold: the caller no longer holds what its guards stand for. Save made
	// nothing visible; Delete deleted nothing.
	ErrGuardFailed = errors.New("checkpoint: guard failed")
	// ErrConflict is returned by Save when another Save or a Delete of the
	// same job ran at the same time and won. Nothing became visible.
	ErrConflict = errors.New("checkpoint: concurrent write of the job")
	// ErrTooLarge is returned by Save for data larger than MaxSize or
	// metadata larger than MaxMetaSize.
	ErrTooLarge = errors.New("checkpoint: too large")
	// ErrBadJob is returned for a job name that cannot be one key segment:
	// empty, longer than 256 bytes, not UTF-8, or containing '/' or a
	// control character.
	ErrBadJob = errors.New("checkpoint: bad job name")
)

// Store reads and writes the checkpoints of jobs under one root prefix. It
// holds no state of its own besides its options: every method reads the
// store, so any number of Stores, in any number of processes, may work on
// the same jobs. Its methods are safe for concurrent use.
type Store struct {
	cli       *clientv3.Client
	root      string
	keep      int
	chunkSize int
	now       func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the root key prefix (default DefaultPrefix). A job's keys
// are the prefix, the job name and "/": end the prefix with a separator.
func WithPrefix(p string) Option { return func(s *Store) { s.root = p } }

// WithKeep sets how many checkpoints of a job Save keeps, the new one
// included (default DefaultKeep); values below 1 mean 1. Keep at least 2
// if Load should have a checkpoint to fall back to when the newest is
// corrupt.
func WithKeep(k int) Option { return func(s *Store) { s.keep = max(k, 1) } }

// WithChunkSize sets the size of one stored value (default
// DefaultChunkSize). It must stay below the server's request limit (1.5
// MiB by default on coordd and etcd) minus a few hundred bytes; values of
// 0 or less mean the default, values above MaxSize mean MaxSize. Load reads
// the chunk size of each checkpoint from its manifest, so it may change
// between Saves.
func WithChunkSize(n int) Option {
	return func(s *Store) {
		if n <= 0 {
			n = DefaultChunkSize
		}
		s.chunkSize = min(n, MaxSize)
	}
}

// WithClock sets the clock that stamps Info.Created (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store that works through cli. It does no I/O. The caller
// keeps ownership of cli and closes it after its last use of the Store.
func New(cli *clientv3.Client, opts ...Option) *Store {
	s := &Store{cli: cli, root: DefaultPrefix, keep: DefaultKeep, chunkSize: DefaultChunkSize, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Info describes one checkpoint, as its manifest records it.
type Info struct {
	// Seq is the checkpoint's sequence number: each Save of a job writes
	// the newest sequence number plus one, starting at 1.
	Seq int64
	// Size is the length of the data in bytes.
	Size int64
	// Chunks is how many values hold the data, each ChunkSize bytes but
	// the last.
	Chunks    int
	ChunkSize int
	// SHA256 is the hex SHA-256 of the data.
	SHA256 string
	// Created is the writer's clock when it saved.
	Created time.Time
	// Meta is the user metadata saved with the checkpoint, nil if none.
	Meta map[string]string
	// Revision is the store revision that published the checkpoint (its
	// manifest's mod revision).
	Revision int64
}

// Checkpoint is one checkpoint with its data.
type Checkpoint struct {
	Info
	Data []byte
}

// Delete deletes every checkpoint of job, complete or not, in one
// transaction that holds only if every guard holds; otherwise it deletes
// nothing and returns an error wrapping ErrGuardFailed. A Save of the job
// running at the same time fails with ErrConflict, or completes after the
// Delete. The next Save of the job writes sequence number 1 again.
func (s *Store) Delete(ctx context.Context, job string, guards ...clientv3.Cmp) error {
	k, err := newKeys(s.root, job)
	if err != nil {
		return err
	}
	from, end := k.job()
	resp, err := s.cli.Txn(ctx).If(guards...).Then(clientv3.OpDelete(from, clientv3.WithRange(end))).Commit()
	if err != nil {
		return fmt.Errorf("checkpoint: delete job %q: %w", job, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("checkpoint: delete job %q: %w", job, ErrGuardFailed)
	}
	return nil
}
