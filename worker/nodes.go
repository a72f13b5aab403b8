package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodesPrefix is where nodes register: NodesPrefix + group + "/" + id.
const NodesPrefix = "coord/nodes/"

// Node is what an agent publishes about its machine. The key is bound to the
// agent's lease: a node whose agent dies disappears from the list.
type Node struct {
	ID      string            `json:"id"`
	Group   string            `json:"group"`
	Version string            `json:"version"`
	State   string            `json:"state"`
	Step    string            `json:"step,omitempty"`
	Address string            `json:"address,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Since is when the node entered State, by the agent's clock.
	Since time.Time `json:"since"`
}

// Node states, as the rollout state machine moves a node through them.
const (
	StateIdle      = "idle"      // on the rollout's version, or no rollout
	StateWaiting   = "waiting"   // needs the upgrade, waiting for a slot, a window or a resume
	StateBlocked   = "blocked"   // the block command says not now
	StateUpgrading = "upgrading" // holds a slot; Step says where it is
	StateFailed    = "failed"    // the health check failed; keeps its slot
	StateDone      = "done"      // upgraded to the rollout's version
)

// ErrBadNode is returned for a node id or group that cannot be a key segment.
var ErrBadNode = errors.New("worker: bad node id or group")

func validSegment(what, s string) error {
	if s == "" || len(s) > 256 || strings.ContainsAny(s, "/\x00\n\r\t") {
		return fmt.Errorf("%w: %s %q (want 1 to 256 bytes, no '/' or control characters)", ErrBadNode, what, s)
	}
	return nil
}

func nodeKey(group, id string) string { return NodesPrefix + group + "/" + id }

// Registration is a node's key, kept up to date by its agent.
type Registration struct {
	cli   *clientv3.Client
	lease clientv3.LeaseID
	key   string

	mu   sync.Mutex // guards node
	node Node
}

// Register publishes n under lease (normally the agent's session lease).
func Register(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, n Node) (*Registration, error) {
	if err := validSegment("group", n.Group); err != nil {
		return nil, err
	}
	if err := validSegment("node id", n.ID); err != nil {
		return nil, err
	}
	r := &Registration{cli: cli, lease: lease, key: nodeKey(n.Group, n.ID), node: n}
	return r, r.put(ctx)
}

// Set changes the node's state, step and version, and publishes it.
func (r *Registration) Set(ctx context.Context, state, step, version string) error {
	r.mu.Lock()
	if r.node.State != state {
		r.node.Since = time.Now().UTC()
	}
	r.node.State, r.node.Step = state, step
	if version != "" {
		r.node.Version = version
	}
	r.mu.Unlock()
	return r.put(ctx)
}

// Node returns what was last published.
func (r *Registration) Node() Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node
}

func (r *Registration) put(ctx context.Context) error {
	r.mu.Lock()
	if r.node.Since.IsZero() {
		r.node.Since = time.Now().UTC()
	}
	b, err := json.Marshal(r.node)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = r.cli.Put(ctx, r.key, string(b), clientv3.WithLease(r.lease))
	return err
}

// ListNodes returns the registered nodes of group, or of every group when
// group is "", ordered by group and id.
func ListNodes(ctx context.Context, cli *clientv3.Client, group string) ([]Node, error) {
	pfx := NodesPrefix
	if group != "" {
		if err := validSegment("group", group); err != nil {
			return nil, err
		}
		pfx += group + "/"
	}
	resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, fmt.Errorf("worker: unreadable node at %q: %w", kv.Key, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
