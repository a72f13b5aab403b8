package kvstore

import (
	"bytes"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MaxLeaseTTL is the largest TTL a lease may be granted, in seconds (etcd's).
const MaxLeaseTTL = 9000000000

// lease is one granted lease: its ID, the TTL it was granted with, and the
// live keys attached to it. When it expires is not the store's business: the
// server keeps deadlines and applies a revoke.
type lease struct {
	id   int64
	ttl  int64
	keys map[string]struct{}
}

// Lease describes a granted lease.
type Lease struct {
	ID  int64
	TTL int64 // granted TTL in seconds
	// Keys are the live keys attached to the lease, in byte order. Only
	// filled by LeaseKeys and LeaseRevoke.
	Keys [][]byte
}

// LeaseGrant creates a lease with the given ID and TTL. ID 0 asks the store to
// choose one: the lowest unused ID at or above an internal counter, so every
// replica applying the same grants chooses the same IDs.
func (s *Store) LeaseGrant(id, ttl int64) (Lease, error) {
	if ttl > MaxLeaseTTL {
		return Lease{}, ErrLeaseTTLTooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		for {
			id = s.nextLease
			s.nextLease++
			if id > 0 {
				if _, used := s.leases[id]; !used {
					break
				}
			}
		}
	}
	if _, ok := s.leases[id]; ok {
		return Lease{}, ErrLeaseExists
	}
	s.leases[id] = &lease{id: id, ttl: ttl, keys: make(map[string]struct{})}
	return Lease{ID: id, TTL: ttl}, nil
}

// LeaseRevoke deletes the lease and, in one revision, every key attached to
// it. It returns the lease with the keys it deleted and the header revision
// after the revoke (unchanged if no key was attached).
func (s *Store) LeaseRevoke(id int64) (Lease, *pb.ResponseHeader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[id]
	if !ok {
		return Lease{}, nil, ErrLeaseNotFound
	}
	keys := l.sortedKeys()
	w := s.newWriter()
	for _, k := range keys {
		w.deleteRange(k, nil)
	}
	delete(s.leases, id)
	w.finish()
	return Lease{ID: id, TTL: l.ttl, Keys: keys}, &pb.ResponseHeader{Revision: s.rev}, nil
}

// LeaseKeys returns the lease with its attached keys.
func (s *Store) LeaseKeys(id int64) (Lease, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.leases[id]
	if !ok {
		return Lease{}, ErrLeaseNotFound
	}
	return Lease{ID: id, TTL: l.ttl, Keys: l.sortedKeys()}, nil
}

// Leases returns every lease, without keys, in ascending ID order.
func (s *Store) Leases() []Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, Lease{ID: l.id, TTL: l.ttl})
	}
	slices.SortFunc(out, func(a, b Lease) int { return cmpInt64(a.ID, b.ID) })
	return out
}

func (l *lease) sortedKeys() [][]byte {
	keys := make([][]byte, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

// attachLocked records that key is attached to lease id (0: no lease).
func (s *Store) attachLocked(id int64, key string) {
	if l, ok := s.leases[id]; ok {
		l.keys[key] = struct{}{}
	}
}

// detachLocked records that key is no longer attached to lease id.
func (s *Store) detachLocked(id int64, key string) {
	if l, ok := s.leases[id]; ok {
		delete(l.keys, key)
	}
}
