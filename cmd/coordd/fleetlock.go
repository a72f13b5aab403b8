package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coordhq/coord/worker"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// fleetLockOptions are the --fleetlock-* flags.
type fleetLockOptions struct {
	addr   string // host:port to listen on
	base   string // path the protocol is served under, "" or "/fleetlock"
	groups map[string]int
	policy worker.FleetLockPolicy
}

func parseFleetLock(rawURL, groups string) (*fleetLockOptions, error) {
	addr, err := hostPort("--fleetlock-listen", rawURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL) // hostPort parsed it already
	o := &fleetLockOptions{addr: addr, base: strings.TrimSuffix(u.Path, "/"), groups: map[string]int{}}
	for _, kv := range strings.Split(groups, ",") {
		g, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
		slots, err := strconv.Atoi(n)
		if !ok || g == "" || err != nil || slots < 0 {
			return nil, fmt.Errorf("--fleetlock-groups %q: want GROUP=SLOTS,... such as default=1,workers=3", groups)
		}
		if strings.ContainsFunc(g, func(r rune) bool {
			return !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return nil, fmt.Errorf("--fleetlock-groups: group %q: want letters, digits, '.' and '-'", g)
		}
		o.groups[g] = slots
	}
	return o, nil
}

// fleetLockServer serves FleetLock over HTTP, talking to this member
// through a client like any other user, so coord does not depend on the
// recipes. Until the store answers (a new cluster may still be electing),
// requests get 503 and the setup is retried.
type fleetLockServer struct {
	cli  *clientv3.Client
	http *http.Server
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu sync.Mutex // guards fl
	fl *worker.FleetLock
}

func startFleetLock(o fleetLockOptions, endpoint string, log *slog.Logger) (*fleetLockServer, error) {
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("--fleetlock-listen: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		lis.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleetLockServer{cli: cli, stop: cancel}
	mux := http.NewServeMux()
	prefix := o.base + "/v1/"
	mux.Handle(prefix, http.StripPrefix(o.base, f))
	f.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		if err := f.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("fleetlock listener stopped", "err", err)
		}
	}()
	go func() {
		defer f.wg.Done()
		f.setUp(ctx, o, log)
	}()
	log.Info("serving fleetlock", "url", "http://"+lis.Addr().String()+o.base, "groups", o.groups)
	return f, nil
}

// setUp creates the FleetLock handler, retrying until the store answers.
func (f *fleetLockServer) setUp(ctx context.Context, o fleetLockOptions, log *slog.Logger) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fl, err := worker.NewFleetLock(sctx, worker.FleetLockConfig{Client: f.cli, Groups: o.groups, Policy: o.policy})
		cancel()
		if err == nil {
			f.mu.Lock()
			f.fl = fl
			f.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("fleetlock not ready; will retry", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (f *fleetLockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	fl := f.fl
	f.mu.Unlock()
	if fl == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"kind":%q,"value":"the store is not ready yet; try again"}`+"\n", worker.KindStoreUnavailable)
		return
	}
	fl.ServeHTTP(w, r)
}

func (f *fleetLockServer) close() {
	f.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.http.Shutdown(ctx)
	f.wg.Wait()
	f.mu.Lock()
	if f.fl != nil {
		f.fl.Close()
	}
	f.mu.Unlock()
	f.cli.Close()
}
