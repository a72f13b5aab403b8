package harness

import (
	"fmt"
	"math/rand/v2"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// nopLogger keeps the etcd client quiet: a benchmark's retries are counted,
// not logged.
var nopLogger = zap.NewNop()

// clientPool is a set of clients, each with its own gRPC connection (per
// endpoint). Worker w uses client w mod len: 256 workers over 16 clients
// share each connection 16 ways.
type clientPool []*clientv3.Client

// newClientPool returns n clients of endpoints.
func newClientPool(endpoints []string, n int) (clientPool, error) {
	p := make(clientPool, 0, max(n, 1))
	for range max(n, 1) {
		cli, err := newClient(endpoints)
		if err != nil {
			p.Close()
			return nil, err
		}
		p = append(p, cli)
	}
	return p, nil
}

// of returns the client of worker w.
func (p clientPool) of(w int) *clientv3.Client { return p[w%len(p)] }

// Close closes every client.
func (p clientPool) Close() {
	for _, c := range p {
		c.Close()
	}
}

// values is a pool of random values, all of one size; random bytes so that
// nothing along the way can compress them.
type values []string

// newValues returns n random values of size bytes.
func newValues(size, n int) values {
	src := rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'})
	v := make(values, n)
	b := make([]byte, size)
	for i := range v {
		src.Read(b)
		v[i] = string(b)
	}
	return v
}

// pick returns a random value of the pool.
func (v values) pick(r *rand.Rand) string { return v[r.IntN(len(v))] }

// keyName returns the i-th key under prefix; names sort as numbers do.
func keyName(prefix string, i int) string { return fmt.Sprintf("%s%08d", prefix, i) }
