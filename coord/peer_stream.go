package coord

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errIsolated is what raft sees while a member is cut off from its peers.
var errIsolated = errors.New("coord: isolated from peers")

// peerStream is raft's TCP stream layer.
//
// A raft address names a member's data dir, not just its port:
// "host:port#incarnation". Every connection starts with the incarnation
// its dialer expects, and a member refuses connections meant for another
// one. A member that lost its data dir gets a new incarnation, so it can
// never answer a vote request or an append meant for its old self, whose
// votes it no longer remembers; the leader removes the old self from the
// configuration and adds the new one (see reconcileRaft).
//
// It has one fault switch: isolated, which closes every raft connection
// and refuses new ones in both directions, as a network partition would.
// Tests use it through Server.IsolatePeers; in production it is never
// switched on.
type peerStream struct {
	net.Listener
	advertise   incAddr
	incarnation string
	quietUntil  time.Time // connections accepted before are closed (listenPeers)

	mu       sync.Mutex // guards isolated and conns
	isolated bool
	conns    map[net.Conn]struct{}
}

// incAddr is a raft address: a TCP address and the incarnation of the
// member's data dir.
type incAddr struct {
	tcp         string
	incarnation string
}

func (a incAddr) Network() string { return "tcp" }
func (a incAddr) String() string  { return a.tcp + "#" + a.incarnation }

// parseRaftAddr splits "host:port#incarnation".
func parseRaftAddr(s string) (incAddr, error) {
	tcp, inc, ok := strings.Cut(s, "#")
	if !ok || inc == "" || len(inc) > 255 {
		return incAddr{}, fmt.Errorf("coord: raft address %q has no incarnation", s)
	}
	return incAddr{tcp: tcp, incarnation: inc}, nil
}

// peerURL is the URL shown for a raft address (without its incarnation).
func peerURL(addr raft.ServerAddress) string {
	tcp, _, _ := strings.Cut(string(addr), "#")
	return "http://" + tcp
}

// listenPeers listens for raft connections. For quiet after it returns it
// closes every connection it accepts: a member restarted on its data has
// forgotten its leader, and until it would have forgotten it had it
// stayed up (an election timeout), it must not vote for anyone, or a
// leader's lease (leader_lease.go) would be cut short. It still dials out.
func listenPeers(bind string, advertise incAddr, quiet time.Duration) (*peerStream, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &peerStream{Listener: l, advertise: advertise, incarnation: advertise.incarnation, conns: map[net.Conn]struct{}{}, quietUntil: time.Now().Add(quiet)}, nil
}

func (p *peerStream) Addr() net.Addr { return p.advertise }

func (p *peerStream) Accept() (net.Conn, error) {
	for {
		c, err := p.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if time.Now().Before(p.quietUntil) {
			c.Close()
			continue
		}
		if tc, ok := p.track(c); ok {
			return &checkedConn{Conn: tc, want: p.incarnation}, nil
		}
	}
}

// checkedConn is an accepted connection whose first bytes, read before
// anything else, must name this member's incarnation. The check runs on
// the transport's connection goroutine, not in Accept, so a slow dialer
// holds up only itself.
type checkedConn struct {
	net.Conn
	want    string
	checked bool // read only by the transport's one reader
}

// errWrongIncarnation closes a connection meant for another incarnation.
var errWrongIncarnation = errors.New("coord: raft connection for another incarnation of this member")

func (c *checkedConn) Read(b []byte) (int, error) {
	if !c.checked {
		var n [1]byte
		if _, err := io.ReadFull(c.Conn, n[:]); err != nil {
			return 0, err
		}
		got := make([]byte, n[0])
		if _, err := io.ReadFull(c.Conn, got); err != nil {
			return 0, err
		}
		if string(got) != c.want {
			c.Conn.Close()
			return 0, errWrongIncarnation
		}
		c.checked = true
	}
	return c.Conn.Read(b)
}

func (p *peerStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	isolated := p.isolated
	p.mu.Unlock()
	if isolated {
		return nil, errIsolated
	}
	to, err := parseRaftAddr(string(address))
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", to.tcp, timeout)
	if err != nil {
		return nil, err
	}
	hello := append([]byte{byte(len(to.incarnation))}, to.incarnation...)
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	tc, ok := p.track(c)
	if !ok {
		return nil, errIsolated
	}
	return tc, nil
}

// track registers a connection, or closes it while isolated.
func (p *peerStream) track(c net.Conn) (net.Conn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isolated {
		c.Close()
		return nil, false
	}
	tc := &trackedConn{Conn: c, p: p}
	p.conns[tc] = struct{}{}
	return tc, true
}

func (p *peerStream) isolate(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isolated = on
	if on {
		for c := range p.conns {
			c.(*trackedConn).Conn.Close()
		}
		clear(p.conns)
	}
}

// crash makes the member vanish for its peers at once, as a killed process
// does: every raft connection is closed and the port refuses new ones,
// while the rest of the member is taken down.
func (p *peerStream) crash() {
	p.isolate(true)
	p.Listener.Close()
}

type trackedConn struct {
	net.Conn
	p    *peerStream
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
	return c.Conn.Close()
}

// Close stops listening and closes every raft connection, so no goroutine
// of the transport stays blocked reading from a peer after shutdown.
func (p *peerStream) Close() error {
	err := p.Listener.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.(*trackedConn).Conn.Close()
	}
	clear(p.conns)
	return err
}
