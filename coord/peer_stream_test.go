package coord

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A member that lost its data dir must not answer raft RPCs meant for its
// old self: it no longer remembers the votes that self cast. A vote request
// sent to the old incarnation's address fails; one sent to the new address
// is answered.
func TestPeerStreamRefusesOtherIncarnation(t *testing.T) {
	stream, err := listenPeers("127.0.0.1:0", incAddr{tcp: "127.0.0.1:0", incarnation: "new"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	stream.advertise.tcp = stream.Listener.Addr().String()
	server := raft.NewNetworkTransport(stream, 1, time.Second, nil)
	defer server.Close()
	answered := make(chan struct{})
	go func() {
		for rpc := range server.Consumer() {
			rpc.Respond(&raft.RequestVoteResponse{Term: 7, Granted: true}, nil)
			close(answered)
			return
		}
	}()

	dialer, err := listenPeers("127.0.0.1:0", incAddr{tcp: "127.0.0.1:0", incarnation: "candidate"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := raft.NewNetworkTransport(dialer, 1, time.Second, nil)
	defer client.Close()

	old := raft.ServerAddress(incAddr{tcp: stream.advertise.tcp, incarnation: "old"}.String())
	var resp raft.RequestVoteResponse
	err = client.RequestVote("m", old, &raft.RequestVoteRequest{Term: 7}, &resp)
	if err == nil || resp.Granted {
		t.Fatalf("vote request to the old incarnation: granted=%v err=%v", resp.Granted, err)
	}
	select {
	case <-answered:
		t.Fatal("the new incarnation saw a request meant for the old one")
	default:
	}

	cur := raft.ServerAddress(stream.advertise.String())
	if err := client.RequestVote("m", cur, &raft.RequestVoteRequest{Term: 7}, &resp); err != nil || !resp.Granted {
		t.Fatalf("vote request to the current incarnation: granted=%v err=%v", resp.Granted, err)
	}
	<-answered
}

// A member restarted on its data refuses raft connections for its quiet
// period, so it votes for no one (leader_lease.go relies on it).
func TestPeerStreamQuietAfterRestart(t *testing.T) {
	stream, err := listenPeers("127.0.0.1:0", incAddr{tcp: "127.0.0.1:0", incarnation: "inc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stream.advertise.tcp = stream.Listener.Addr().String()
	server := raft.NewNetworkTransport(stream, 1, time.Second, nil)
	defer server.Close()
	dialer, err := listenPeers("127.0.0.1:0", incAddr{tcp: "127.0.0.1:0", incarnation: "candidate"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := raft.NewNetworkTransport(dialer, 1, time.Second, nil)
	defer client.Close()
	var resp raft.RequestVoteResponse
	err = client.RequestVote("m", raft.ServerAddress(stream.advertise.String()), &raft.RequestVoteRequest{Term: 7}, &resp)
	if err == nil || resp.Granted {
		t.Fatalf("vote request during the quiet period: granted=%v err=%v", resp.Granted, err)
	}
	select {
	case rpc := <-server.Consumer():
		t.Fatalf("the quiet member saw %T", rpc.Command)
	default:
	}
}

func TestParseRaftAddr(t *testing.T) {
	a, err := parseRaftAddr("10.0.0.1:2380#abc")
	if err != nil || a.tcp != "10.0.0.1:2380" || a.incarnation != "abc" || a.String() != "10.0.0.1:2380#abc" {
		t.Fatalf("parse: %+v %v", a, err)
	}
	for _, bad := range []string{"10.0.0.1:2380", "10.0.0.1:2380#"} {
		if _, err := parseRaftAddr(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got := peerURL("10.0.0.1:2380#abc"); got != "http://10.0.0.1:2380" {
		t.Errorf("peerURL = %q", got)
	}
}
