package coord

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errIsolated is what raft sees while a member is cut off from its peers.
var errIsolated = errors.New("coord: isolated from peers")

// peerStream is raft's TCP stream layer with one fault switch: isolated,
// which closes every raft connection and refuses new ones in both
// directions, as a network partition would. Tests use it through
// Server.IsolatePeers; in production it is never switched on.
type peerStream struct {
	net.Listener
	advertise net.Addr

	mu       sync.Mutex // guards isolated and conns
	isolated bool
	conns    map[net.Conn]struct{}
}

func listenPeers(bind string, advertise net.Addr) (*peerStream, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &peerStream{Listener: l, advertise: advertise, conns: map[net.Conn]struct{}{}}, nil
}

func (p *peerStream) Addr() net.Addr { return p.advertise }

func (p *peerStream) Accept() (net.Conn, error) {
	for {
		c, err := p.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := p.track(c); ok {
			return tc, nil
		}
	}
}

func (p *peerStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	isolated := p.isolated
	p.mu.Unlock()
	if isolated {
		return nil, errIsolated
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
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
