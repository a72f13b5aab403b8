package kvstore

import "errors"

// Errors returned by the store. The server maps each of them to the etcd
// rpctypes error of the same meaning, so an etcd client reacts to them as it
// would to etcd itself.
var (
	// ErrCompacted: the requested revision is older than the compacted revision.
	ErrCompacted = errors.New("kvstore: required revision has been compacted")
	// ErrFutureRev: the requested revision is newer than the current revision.
	ErrFutureRev = errors.New("kvstore: required revision is a future revision")
	// ErrEmptyKey: a request named no key.
	ErrEmptyKey = errors.New("kvstore: key is not provided")
	// ErrKeyNotFound: ignore_value or ignore_lease was set on a key that does not exist.
	ErrKeyNotFound = errors.New("kvstore: key not found")
	// ErrValueProvided: ignore_value was set together with a value.
	ErrValueProvided = errors.New("kvstore: value is provided")
	// ErrLeaseProvided: ignore_lease was set together with a lease.
	ErrLeaseProvided = errors.New("kvstore: lease is provided")
	// ErrTooManyOps: a txn branch or its compares exceed the configured maximum.
	ErrTooManyOps = errors.New("kvstore: too many operations in txn request")
	// ErrDuplicateKey: a txn writes the same key twice in one branch.
	ErrDuplicateKey = errors.New("kvstore: duplicate key given in txn request")
	// ErrInvalidSortOption: a range asked for a sort order or target that does not exist.
	ErrInvalidSortOption = errors.New("kvstore: invalid sort option")
	// ErrInvalidRequest: a request is malformed in a way no other error describes
	// (an empty request op, an unknown compare target or result).
	ErrInvalidRequest = errors.New("kvstore: invalid request")
	// ErrLeaseNotFound: a put or revoke names a lease that does not exist.
	ErrLeaseNotFound = errors.New("kvstore: requested lease not found")
	// ErrLeaseExists: a grant names a lease ID that is already in use.
	ErrLeaseExists = errors.New("kvstore: lease already exists")
	// ErrLeaseTTLTooLarge: a grant asks for a TTL above MaxLeaseTTL.
	ErrLeaseTTLTooLarge = errors.New("kvstore: too large lease TTL")
	// ErrWatchStreamClosed: the watch stream was closed.
	ErrWatchStreamClosed = errors.New("kvstore: watch stream closed")
	// ErrEmptyWatcherRange: a watch names a range whose end is not after its key.
	ErrEmptyWatcherRange = errors.New("kvstore: watcher range is empty")
	// ErrWatchIDExists: a watch was created with an ID already used on its stream.
	ErrWatchIDExists = errors.New("kvstore: watch ID already in use")
	// ErrSnapshotCorrupt: a snapshot stream failed its checksum or is malformed.
	ErrSnapshotCorrupt = errors.New("kvstore: snapshot is corrupt")
	// ErrSnapshotVersion: a snapshot was written by an unknown format version.
	ErrSnapshotVersion = errors.New("kvstore: unsupported snapshot format version")
)
