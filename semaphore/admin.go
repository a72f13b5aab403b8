package semaphore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is what an operator sees of a semaphore.
type Status struct {
	Name  string
	Limit int
	// Exists is false when no participant has used the semaphore yet.
	Exists  bool
	Holders []Holder
	Waiters []Waiter
	// Revision is the store revision the status was read at.
	Revision int64
}

// Holder is a taken slot.
type Holder struct {
	ID    string
	Value string
	// Since is when the slot was granted, by the holder's clock.
	Since time.Time
	// Token is the fencing token; 0 for a quarantined slot.
	Token int64
	Lease int64
	// Quarantined: the holder's lease expired without a release; the slot
	// stays taken until its quarantine ends or the holder takes it back.
	Quarantined bool
}

// Waiter is a queued participant, in the order of admission.
type Waiter struct {
	ID    string
	Value string
	Since time.Time
}

// GetStatus reads the limit, the holders and the waiters of semaphore name
// in one consistent read.
func GetStatus(ctx context.Context, cli *clientv3.Client, name string, opts ...Option) (*Status, error) {
	k, err := newKeys(buildOptions(opts).prefix, name)
	if err != nil {
		return nil, err
	}
	resp, err := cli.Txn(ctx).Then(
		k.stateOps(),
		clientv3.OpGet(k.queuePrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
	).Commit()
	if err != nil {
		return nil, err
	}
	st := &state{rev: resp.Header.Revision}
	if err := k.parseState(st, resp.Responses[0].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	out := &Status{Name: name, Limit: st.limit, Exists: st.limitMod != 0, Revision: st.rev,
		Holders: []Holder{}, Waiters: []Waiter{}} // empty, not null, in JSON
	for _, sl := range st.slots {
		h := Holder{ID: sl.id, Value: sl.rec.Value, Since: sl.rec.Since, Lease: sl.rec.Lease, Quarantined: !sl.live}
		if sl.live {
			h.Token = sl.grant.CreateRevision
		}
		out.Holders = append(out.Holders, h)
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		rec, err := decodeRecord(kv)
		if err != nil {
			return nil, err
		}
		out.Waiters = append(out.Waiters, Waiter{ID: strings.TrimPrefix(string(kv.Key), k.queuePrefix()), Value: rec.Value, Since: rec.Since})
	}
	return out, nil
}

// SetLimit changes the number of slots of semaphore name, creating the
// semaphore if needed. Raising it admits waiters at once; lowering it lets
// current holders keep their slots and admits nobody until fewer than n
// slots are taken. A limit of 0 admits nobody (a pause).
func SetLimit(ctx context.Context, cli *clientv3.Client, name string, n int, opts ...Option) error {
	if n < 0 {
		return fmt.Errorf("%w: %d", ErrBadLimit, n)
	}
	k, err := newKeys(buildOptions(opts).prefix, name)
	if err != nil {
		return err
	}
	_, err = cli.Put(ctx, k.limit(), strconv.Itoa(n))
	return err
}

// ForceRelease frees the slot of holder id at once, live or quarantined,
// for an operator who knows the holder is gone. The holder's grant ends:
// its Done channel closes and its guarded writes fail from now on. It
// returns ErrNotHeld if id holds no slot.
func ForceRelease(ctx context.Context, cli *clientv3.Client, name, id string, opts ...Option) error {
	k, err := newKeys(buildOptions(opts).prefix, name)
	if err != nil {
		return err
	}
	if err := validName("holder ID", id); err != nil {
		return err
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k.occ(id)), ">", 0)).
		Then(clientv3.OpDelete(k.grant(id)), clientv3.OpDelete(k.occ(id)), clientv3.OpDelete(k.quar(id))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	return nil
}
