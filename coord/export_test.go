package coord

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ProposePut lets the external tests reach propose directly, with contexts a
// gRPC client would never send (one that already expired).
func (s *Server) ProposePut(ctx context.Context, r *pb.PutRequest) error {
	_, err := s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	return err
}
