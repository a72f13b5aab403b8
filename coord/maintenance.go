package coord

import (
	"context"
	"hash/crc32"
	"io"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiVersion is the etcd API version coordd implements and reports, so that
// tools which gate features on the server version treat it as that etcd.
const apiVersion = "3.7.3"

// maintenanceServer is etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	s := m.s
	resp := &pb.StatusResponse{
		Header:  s.header(s.store.Rev()),
		Version: apiVersion,
		// Never 0: etcdctl divides by it. (etcd's smallest file is larger.)
		DbSize:           max(s.store.Size(), 1),
		DbSizeInUse:      max(s.store.Size(), 1),
		RaftIndex:        s.node.raft.LastIndex(),
		RaftTerm:         s.node.raft.CurrentTerm(),
		RaftAppliedIndex: s.node.raft.AppliedIndex(),
		StorageVersion:   "3.7.0",
		DbSizeQuota:      s.cfg.QuotaBytes,
	}
	if _, id := s.node.raft.LeaderWithID(); id != "" {
		resp.Leader = hash64(string(id))
	}
	if s.overQuota() {
		resp.Errors = append(resp.Errors, "etcdserver: mvcc: database space exceeded")
	}
	return resp, nil
}

func (s *Server) overQuota() bool { return s.fsm.overQuota() }

// Alarm lists the NOSPACE alarm while the store is over its quota. The alarm
// follows the store's size: it clears itself once compaction brings the size
// back under the quota, so deactivating it is accepted and changes nothing.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	s := m.s
	resp := &pb.AlarmResponse{Header: s.header(s.store.Rev())}
	if s.overQuota() {
		resp.Alarms = []*pb.AlarmMember{{MemberID: s.memberID, Alarm: pb.AlarmType_NOSPACE}}
	}
	return resp, nil
}

func (m *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return &pb.DefragmentResponse{Header: m.s.header(m.s.store.Rev())}, nil
}

// HashKV returns a CRC-32C of the store's snapshot encoding at the current
// revision; members holding the same state report the same hash.
func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	s := m.s
	sn := s.store.Snapshot()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := sn.WriteTo(h); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashKVResponse{Header: s.header(sn.Rev()), Hash: h.Sum32(), CompactRevision: s.store.CompactRev(), HashRevision: sn.Rev()}, nil
}

// Snapshot streams the store's snapshot encoding (not a bbolt file: etcdctl
// snapshot restore cannot read it; coordd restores it).
func (m *maintenanceServer) Snapshot(r *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	sn := m.s.store.Snapshot()
	pr, pw := io.Pipe()
	go func() { _, err := sn.WriteTo(pw); pw.CloseWithError(err) }()
	defer pr.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			out := &pb.SnapshotResponse{Header: m.s.header(sn.Rev()), Blob: append([]byte(nil), buf[:n]...), Version: apiVersion}
			if serr := stream.Send(out); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return toGRPC(err)
		}
	}
}

func (m *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	s := m.s
	if s.node.raft.State() != raft.Leader {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	for _, p := range s.peers() {
		if hash64(string(p.ID)) == r.TargetID {
			if err := s.transferLeadership(func() raft.Future { return s.node.raft.LeadershipTransferToServer(p.ID, p.Address) }); err != nil {
				return nil, toGRPC(err)
			}
			return &pb.MoveLeaderResponse{Header: s.header(s.store.Rev())}, nil
		}
	}
	return nil, rpctypes.ErrGRPCBadLeaderTransferee
}

// Hash returns the same hash as HashKV at the current revision: etcd hashes
// its whole bbolt file, and the store's snapshot encoding is coordd's
// equivalent of that file.
func (m *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	kv, err := m.HashKV(ctx, &pb.HashKVRequest{})
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: kv.Header, Hash: kv.Hash}, nil
}

// clusterServer is etcd's Cluster service over the raft configuration.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	s := c.s
	resp := &pb.MemberListResponse{Header: s.header(s.store.Rev())}
	for _, p := range s.peers() {
		m := &pb.Member{ID: hash64(string(p.ID)), Name: string(p.ID), PeerURLs: []string{peerURL(p.Address)}, IsLearner: p.Suffrage != raft.Voter}
		if addr, ok := s.members.clientAddr(string(p.ID)); ok {
			m.ClientURLs = []string{"http://" + addr}
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}

// MemberAdd is not how members join: they find the cluster by gossip.
func (c *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, status.Error(codes.Unimplemented, "coordd: members join by gossip; start the new member with --join pointing at any member")
}

// MemberRemove takes a member out of the raft configuration. A member that
// is still running would be added back by gossip; stop it first, or let it
// leave with SIGTERM, which removes it.
func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	s := c.s
	if fctx, conn, ok := s.forward.to(ctx); ok {
		return pb.NewClusterClient(conn).MemberRemove(fctx, r)
	}
	if !s.IsLeader() {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	for _, p := range s.peers() {
		if hash64(string(p.ID)) != r.ID {
			continue
		}
		if err := s.changeConfig(func() raft.Future { return s.node.raft.RemoveServer(p.ID, 0, s.cfg.ApplyTimeout) }); err != nil {
			return nil, toGRPC(err)
		}
		resp, err := c.MemberList(ctx, &pb.MemberListRequest{})
		if err != nil {
			return nil, err
		}
		return &pb.MemberRemoveResponse{Header: resp.Header, Members: resp.Members}, nil
	}
	return nil, rpctypes.ErrGRPCMemberNotFound
}

// MemberPromote: coordd has no learners; every member is a voter.
func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, status.Error(codes.Unimplemented, "coordd: members are voters from the start; there are no learners to promote")
}

// MemberUpdate: peer addresses come from gossip, not from the API.
func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, status.Error(codes.Unimplemented, "coordd: peer addresses come from gossip; restart the member with the new --initial-advertise-peer-urls")
}
