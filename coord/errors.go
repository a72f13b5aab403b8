package coord

import (
	"context"
	"errors"

	"github.com/coordhq/coord/kvstore"
	"github.com/hashicorp/raft"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the server itself. Over the API each becomes the etcd error of
// the same meaning.
var (
	// ErrNoSpace: the store is over its quota; only deletes, compactions and
	// reads are served until compaction brings it back under.
	ErrNoSpace = errors.New("coord: database space exceeded")
	// ErrStopped: the server is shutting down.
	ErrStopped = errors.New("coord: server stopped")
)

// grpcErrors maps store and server errors to etcd's, which clients
// recognise by their status message.
var grpcErrors = map[error]error{
	kvstore.ErrCompacted:                 rpctypes.ErrGRPCCompacted,
	kvstore.ErrFutureRev:                 rpctypes.ErrGRPCFutureRev,
	kvstore.ErrEmptyKey:                  rpctypes.ErrGRPCEmptyKey,
	kvstore.ErrKeyNotFound:               rpctypes.ErrGRPCKeyNotFound,
	kvstore.ErrValueProvided:             rpctypes.ErrGRPCValueProvided,
	kvstore.ErrLeaseProvided:             rpctypes.ErrGRPCLeaseProvided,
	kvstore.ErrTooManyOps:                rpctypes.ErrGRPCTooManyOps,
	kvstore.ErrDuplicateKey:              rpctypes.ErrGRPCDuplicateKey,
	kvstore.ErrInvalidSortOption:         rpctypes.ErrGRPCInvalidSortOption,
	kvstore.ErrLeaseNotFound:             rpctypes.ErrGRPCLeaseNotFound,
	kvstore.ErrLeaseExists:               rpctypes.ErrGRPCLeaseExist,
	kvstore.ErrLeaseTTLTooLarge:          rpctypes.ErrGRPCLeaseTTLTooLarge,
	ErrNoSpace:                           rpctypes.ErrGRPCNoSpace,
	ErrStopped:                           rpctypes.ErrGRPCStopped,
	raft.ErrNotLeader:                    rpctypes.ErrGRPCNotLeader,
	raft.ErrLeadershipLost:               rpctypes.ErrGRPCTimeoutDueToLeaderFail,
	raft.ErrLeadershipTransferInProgress: rpctypes.ErrGRPCNotLeader,
	raft.ErrEnqueueTimeout:               rpctypes.ErrGRPCTimeout,
	raft.ErrRaftShutdown:                 rpctypes.ErrGRPCStopped,
}

// EtcdError returns the gRPC status etcd answers for err: kvstore's and
// the server's sentinel errors become etcd's rpctypes errors, which clients
// recognise by their message. nil stays nil.
func EtcdError(err error) error { return toGRPC(err) }

// toGRPC turns any error into the status an etcd client expects.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for from, to := range grpcErrors {
		if errors.Is(err, from) {
			return to
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
