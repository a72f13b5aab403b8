package harness

import (
	"fmt"
	"io"
	"net"
	"strconv"
)

// freePorts returns n distinct loopback ports that were free, for TCP and
// for UDP, a moment ago: memberlist gossips over both on one port. They
// are held until all n are found, so that none is returned twice. Someone
// else may take a port before the server binds it; the cluster start then
// fails early and StartCluster tries again with fresh ports.
func freePorts(n int) ([]int, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("harness: found only %d of %d free ports", len(ports), n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("harness: free port: %w", err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // the UDP twin is taken: keep the TCP one held, try another
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// loopback returns 127.0.0.1:port.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
