package checkpointtest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The suite injects faults between two requests of a Save or a Load by
// giving the Store a client whose KV is wrapped, as clientv3's namespace
// package wraps one: the Store still sends every request to the endpoint,
// and a function of the scenario runs when a request the fault follows
// has returned. Which request that is, the documented key layout tells.

// onChunk returns a new client of env, closed when the test ends, that
// calls f(seq, i) after each transaction that wrote chunk i of checkpoint
// seq of job under root and committed (chunk 0 is written by the claim; a
// one-chunk Save claims and publishes at once), before the Save sends its
// next request. A Store on it behaves as on any client otherwise.
func onChunk(t *testing.T, env Env, root, job string, f func(seq int64, i int)) *clientv3.Client {
	t.Helper()
	cli := connect(t, env)
	dir := root + job + "/d/"
	cli.KV = &injectKV{KV: cli.KV, afterPut: func(key string) {
		rest, ok := strings.CutPrefix(key, dir)
		if !ok {
			return
		}
		seqS, iS, ok := strings.Cut(rest, "/")
		seq, err1 := strconv.ParseInt(seqS, 10, 64)
		i, err2 := strconv.Atoi(iS)
		if !ok || err1 != nil || err2 != nil {
			t.Errorf("onChunk: %q is not a chunk key", key)
			return
		}
		f(seq, i)
	}}
	return cli
}

// onManifests returns a new client of env, closed when the test ends, that
// calls f after each read of the range of manifests of job under root has
// returned: in a Load, after it read the manifests and before it reads any
// chunk.
func onManifests(t *testing.T, env Env, root, job string, f func()) *clientv3.Client {
	t.Helper()
	cli := connect(t, env)
	manifests := root + job + "/m/"
	cli.KV = &injectKV{KV: cli.KV, afterGet: func(key string) {
		if key == manifests {
			f()
		}
	}}
	return cli
}

// injectKV calls its functions after the requests they follow succeed.
type injectKV struct {
	clientv3.KV
	afterPut func(key string) // per key a committed txn put, in its Then branch
	afterGet func(key string) // per range read, with the key it starts at
}

func (kv *injectKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := kv.KV.Get(ctx, key, opts...)
	if err == nil && kv.afterGet != nil {
		kv.afterGet(key)
	}
	return resp, err
}

func (kv *injectKV) Txn(ctx context.Context) clientv3.Txn {
	return &injectTxn{Txn: kv.KV.Txn(ctx), kv: kv}
}

// injectTxn remembers the Then branch of a transaction for its Commit.
type injectTxn struct {
	clientv3.Txn
	kv   *injectKV
	then []clientv3.Op
}

func (tx *injectTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	tx.Txn = tx.Txn.If(cs...)
	return tx
}

func (tx *injectTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	tx.Txn = tx.Txn.Then(ops...)
	tx.then = append(tx.then, ops...)
	return tx
}

func (tx *injectTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	tx.Txn = tx.Txn.Else(ops...)
	return tx
}

func (tx *injectTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := tx.Txn.Commit()
	if err == nil && resp.Succeeded && tx.kv.afterPut != nil {
		for _, op := range tx.then {
			if op.IsPut() {
				tx.kv.afterPut(string(op.KeyBytes()))
			}
		}
	}
	return resp, err
}
