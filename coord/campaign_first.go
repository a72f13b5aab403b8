package coord

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// When a leader dies after sending an entry to one follower but not yet to
// the other, the two logs differ by that entry. If the follower with the
// longer log reaches its deadline first (campaign.go), the other refuses
// it, because it still holds the dead leader. Prompted by the request,
// the other campaigns in turn and is refused too, because its log is
// shorter. Both are then candidates whose pre-votes failed, and nothing
// happens until raft's election timer, drawn in [1, 2) election timeouts,
// fires on one of them. In the harness's leader-kill, 4 runs of 60 took
// 2.7-2.9 s instead of about 1.05 s, and in all 4 the members' logs held
// this refusal.
//
// So a follower whose deadline passed, before it campaigns, tells the
// other voters so, with the position of its log (letOthersGoFirst). A voter
// whose log is not ahead of it answers that it will campaign first. It
// campaigns at its own floor, as it would after a vote request, and loses,
// but it is then a candidate without a leader. The follower waits for that
// voter's vote request and then campaigns itself; the voter grants it its
// vote, since the follower's log is at least as up to date. A voter whose
// log is ahead answers no. The follower then campaigns at once and is
// refused, and the voter, woken by the request, campaigns and wins as
// before.
//
// None of this changes who may vote or when. raft still grants a vote only
// once its own timer has dropped the leader, one election timeout after the
// last contact at the earliest. That floor is what the leader lease
// (leader_lease.go) rests on.

const campaignFirstMethod = "/coord.Internal/CampaignFirst"

// A CampaignFirst request frame is
//
//	last log term uint64 | last log index uint64 | the leader's ID
//
// and its answer is one byte: 1 if the voter campaigns first, 0 if not.

// lastLogPosition is the term and index of the last entry of this member's
// log, or of its snapshot if that is newer, as raft compares them in a
// vote.
func (n *node) lastLogPosition() (term, index uint64) {
	st := n.raft.Stats()
	num := func(k string) uint64 {
		v, _ := strconv.ParseUint(st[k], 10, 64)
		return v
	}
	term, index = num("last_log_term"), num("last_log_index")
	if si := num("last_snapshot_index"); si > index {
		term, index = num("last_snapshot_term"), si
	}
	return term, index
}

// serveCampaignFirst answers a follower that is about to campaign because
// the leader named in the frame is silent.
func (s *Server) serveCampaignFirst(in []byte) ([]byte, error) {
	if len(in) < 16 {
		return nil, status.Error(codes.InvalidArgument, "coord: short campaign-first frame")
	}
	theirTerm, theirIndex := binary.BigEndian.Uint64(in), binary.BigEndian.Uint64(in[8:])
	leader := raft.ServerID(in[16:])
	no := []byte{0}
	if _, id := s.node.raft.LeaderWithID(); s.node.raft.State() != raft.Follower || id != leader {
		return no, nil // another leader, or an election already under way
	}
	if s.askingFirst.Load() {
		// Two followers asking each other at once (their ranks disagree
		// while the configuration changes) would each wait for the other:
		// both campaign now, as they did before either asked.
		return no, nil
	}
	term, index := s.node.lastLogPosition()
	if term > theirTerm || term == theirTerm && index > theirIndex {
		return no, nil // this log is ahead: the asker campaigns, and this member wins after it
	}
	select {
	case s.campaignFirst <- struct{}{}:
	default: // one is pending already
	}
	return []byte{1}, nil
}

// firstOutcome is how letOthersGoFirst ended.
type firstOutcome int

const (
	nobodyWentFirst firstOutcome = iota // campaign now, as without asking
	otherWentFirst                      // a vote request came: campaign now
	stopping                            // the server is closing
)

// letOthersGoFirst asks the voters other than this member and the silent
// leader to campaign first and, if one agrees, waits for its vote request.
// The wait is longer than the other's own dial of the leader before it
// campaigns (a quarter of the timeout, when the leader does not refuse but
// stays silent) plus how much later than ours its floor may fall (its
// last contact may be one heartbeat, a tenth of the timeout, later).
func (s *Server) letOthersGoFirst(leader raft.ServerID, asks <-chan raft.Observation) firstOutcome {
	s.askingFirst.Store(true)
	defer s.askingFirst.Store(false)
	if !s.askOthersFirst(leader, s.cfg.ElectionTimeout/8) {
		return nobodyWentFirst
	}
	t := time.NewTimer(s.cfg.ElectionTimeout / 2)
	defer t.Stop()
	select {
	case <-asks:
		return otherWentFirst
	case <-t.C:
		return nobodyWentFirst
	case <-s.stopc:
		return stopping
	}
}

// askOthersFirst tells the voters other than this member and the silent
// leader that this member is about to campaign, and reports whether one of
// them answered, within timeout, that it campaigns first.
func (s *Server) askOthersFirst(leader raft.ServerID, timeout time.Duration) bool {
	term, index := s.node.lastLogPosition()
	frame := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(leader)), term)
	frame = binary.BigEndian.AppendUint64(frame, index)
	frame = append(frame, leader...)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-s.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	answers := make(chan bool)
	asked := 0
	for _, srv := range s.peers() {
		if srv.Suffrage != raft.Voter || srv.ID == leader || srv.ID == raft.ServerID(s.cfg.Name) {
			continue
		}
		addr, ok := s.members.clientAddr(string(srv.ID))
		if !ok {
			continue
		}
		asked++
		go func() { answers <- askFirst(ctx, addr, frame) }()
	}
	first := false
	for range asked {
		first = <-answers || first
	}
	return first
}

// askFirst sends one CampaignFirst request on a connection of its own: it
// is made once per dead leader, and the forwarder's connection is for the
// leader.
func askFirst(ctx context.Context, addr string, frame []byte) bool {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	var out []byte
	err = conn.Invoke(ctx, campaignFirstMethod, &frame, &out, grpc.CallContentSubtype(rawCodec{}.Name()))
	return err == nil && len(out) == 1 && out[0] == 1
}
