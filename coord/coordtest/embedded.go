package coordtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/coordhq/coord/coord"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Embedded starts a single-member coordd on free loopback ports with its
// data in dataDir, for examples and demos that need a server and have no
// testing.T. It returns once the member serves linearizable reads; the
// caller closes the server.
func Embedded(dataDir string) (*coord.Server, error) {
	var lastErr error
	for range 5 { // a free port may be taken between finding and binding it
		cfg := coord.DefaultConfig()
		cfg.Name = "embedded"
		cfg.DataDir = dataDir
		addrs := make([]string, 3)
		for i := range addrs {
			a, err := freeLoopback()
			if err != nil {
				return nil, err
			}
			addrs[i] = a
		}
		cfg.ClientAddr, cfg.PeerAddr, cfg.GossipAddr = addrs[0], addrs[1], addrs[2]
		cfg.AdvertisePeerAddr = cfg.PeerAddr
		cfg.HeartbeatTimeout = 50 * time.Millisecond
		cfg.ElectionTimeout = 500 * time.Millisecond
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		s, err := coord.New(cfg)
		if err != nil {
			return nil, err
		}
		if err = s.Start(); err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, err
		}
		if err := waitServing(s.ClientAddr()); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	return nil, lastErr
}

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitServing(endpoint string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: nopLogger()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "coordtest/ready")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coordtest: embedded member not serving after 10s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
