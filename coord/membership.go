package coord

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// memberMeta is what a member tells the others about itself by gossip.
type memberMeta struct {
	Name   string `json:"name"`
	Raft   string `json:"raft"`   // advertised raft address
	Client string `json:"client"` // client API address
	Gossip string `json:"gossip"` // gossip address
	// Incarnation is random per data dir: a member that lost its data
	// comes back under its old name with a new incarnation.
	Incarnation string `json:"incarnation"`
	// HasState says the member has raft state. A member without it never
	// bootstraps while any member with state is alive: it waits to be
	// added, so a wiped member cannot fork the cluster.
	HasState bool `json:"has_state"`
	// Leaving is set by a member shutting down gracefully, just before it
	// leaves the gossip group: the leader then removes it from raft.
	// (memberlist does not tell a graceful leave from a failure.)
	Leaving bool `json:"leaving,omitempty"`
}

// incarnationFile, in the data dir, holds the member's incarnation.
const incarnationFile = "incarnation"

// loadIncarnation returns the data dir's incarnation. A data dir without
// raft state gets a new one: whatever this member was before, it no longer
// remembers its votes, so it must not be taken for its old self.
func loadIncarnation(dataDir string, hasState bool) (string, error) {
	path := filepath.Join(dataDir, incarnationFile)
	if b, err := os.ReadFile(path); hasState && err == nil && len(b) > 0 {
		return string(b), nil
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := replaceFile(path, []byte(id)); err != nil {
		return "", fmt.Errorf("coord: write incarnation: %w", err)
	}
	return id, nil
}

// peersFile, in the data dir, lists the gossip addresses of the members
// last seen, so that a restarted member finds its cluster again without
// --join.
const peersFile = "gossip-peers.json"

func (m *membership) savePeers() {
	var addrs []string
	for _, mm := range m.alive() {
		if mm.Name != m.s.cfg.Name && mm.Gossip != "" {
			addrs = append(addrs, mm.Gossip)
		}
	}
	if len(addrs) == 0 || slices.Equal(addrs, m.saved) {
		return
	}
	data, err := json.Marshal(addrs)
	if err != nil {
		return
	}
	if err := replaceFile(filepath.Join(m.s.cfg.DataDir, peersFile), data); err != nil {
		m.s.log.Warn("save gossip peers", "err", err)
		return
	}
	m.saved = addrs
}

// replaceFile writes data to path through a synced temporary file and a
// rename, so a crash leaves the old content or the new, never a part.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// savedPeers returns the gossip addresses saved by an earlier run.
func savedPeers(dataDir string) []string {
	data, err := os.ReadFile(filepath.Join(dataDir, peersFile))
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(data, &addrs) != nil {
		return nil
	}
	return addrs
}

// membership runs memberlist: who is out there, at which addresses, and who
// left on purpose. The server's reconcile loop turns that into raft
// configuration changes.
type membership struct {
	s  *Server
	ml *memberlist.Memberlist

	metaMu sync.Mutex // guards self and meta
	self   memberMeta
	meta   []byte

	mu      sync.Mutex // guards members and left
	members map[string]memberMeta
	left    map[string]bool // left gracefully: to be removed from raft
	changed chan struct{}   // has a value after a membership event
	saved   []string        // what savePeers last wrote; reconcile loop only
	joinTo  []string        // --join plus the saved peers
	// gossipAddrs maps every member ever seen to its gossip address
	// (guarded by mu), to find again members that came back.
	gossipAddrs map[string]string
	lastRejoin  time.Time // reconcile loop only
}

// rejoinMissing gossips again to members of the raft configuration that
// gossip does not see alive: a member that restarted knowing no live seed
// (its --join pointed at itself, its saved peers were wiped) is found by
// the others. At most every two seconds.
func (m *membership) rejoinMissing(servers []raft.Server, now time.Time) {
	if now.Sub(m.lastRejoin) < 2*time.Second {
		return
	}
	m.lastRejoin = now
	var addrs []string
	m.mu.Lock()
	for _, p := range servers {
		name := string(p.ID)
		if _, alive := m.members[name]; alive || name == m.s.cfg.Name {
			continue
		}
		if a, ok := m.gossipAddrs[name]; ok {
			addrs = append(addrs, a)
		}
	}
	m.mu.Unlock()
	if len(addrs) > 0 {
		if _, err := m.ml.Join(addrs); err != nil {
			m.s.log.Debug("rejoin missing members", "addrs", addrs, "err", err)
		}
	}
}

// setHasState publishes that this member now has raft state.
func (m *membership) setHasState() {
	m.metaMu.Lock()
	if m.self.HasState {
		m.metaMu.Unlock()
		return
	}
	m.self.HasState = true
	meta, err := json.Marshal(m.self)
	if err == nil {
		m.meta = meta
	}
	self := m.self
	m.metaMu.Unlock()
	m.mu.Lock()
	m.members[self.Name] = self
	m.mu.Unlock()
	if err := m.ml.UpdateNode(time.Second); err != nil {
		m.s.log.Debug("gossip update", "err", err)
	}
}

// anyHasState reports whether an alive member other than this one has raft
// state, that is, whether a cluster already exists.
func (m *membership) anyHasState() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, mm := range m.members {
		if name != m.s.cfg.Name && mm.HasState {
			return true
		}
	}
	return false
}

func openMembership(s *Server) (*membership, error) {
	host, portStr, err := net.SplitHostPort(s.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("coord: gossip address %q: %w", s.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("coord: gossip port %q: %w", portStr, err)
	}
	client := s.cfg.AdvertiseClientAddr
	if client == "" {
		client = s.ClientAddr()
	}
	self := memberMeta{Name: s.cfg.Name, Raft: string(s.node.transport.LocalAddr()), Client: client, Gossip: s.cfg.GossipAddr,
		Incarnation: s.node.incarnation, HasState: s.node.hasState()}
	meta, err := json.Marshal(self)
	if err != nil {
		return nil, err
	}
	m := &membership{s: s, self: self, meta: meta, members: map[string]memberMeta{s.cfg.Name: self}, left: map[string]bool{},
		gossipAddrs: map[string]string{}, changed: make(chan struct{}, 1)}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = s.cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Delegate = gossipDelegate{m}
	mc.Events = m
	mc.LogOutput = slogWriter{s.log.With("component", "gossip")}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("coord: start gossip on %s: %w", s.cfg.GossipAddr, err)
	}
	m.ml = ml
	m.saved = savedPeers(s.cfg.DataDir)
	m.joinTo = append(slices.Clone(s.cfg.Join), m.saved...)
	return m, nil
}

// join contacts the given members; it is retried by the reconcile loop
// until one answers.
func (m *membership) join(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	_, err := m.ml.Join(addrs)
	return err
}

func (m *membership) kick() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *membership) NotifyJoin(n *memberlist.Node)   { m.update(n, true) }
func (m *membership) NotifyUpdate(n *memberlist.Node) { m.update(n, true) }
func (m *membership) NotifyLeave(n *memberlist.Node)  { m.update(n, false) }

func (m *membership) update(n *memberlist.Node, alive bool) {
	var meta memberMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.Name == "" {
		return // not a coord member, or an old one without metadata
	}
	m.mu.Lock()
	if meta.Gossip != "" {
		m.gossipAddrs[meta.Name] = meta.Gossip
	}
	switch {
	case meta.Leaving:
		delete(m.members, meta.Name)
		m.left[meta.Name] = true
	case alive:
		m.members[meta.Name] = meta
		delete(m.left, meta.Name)
	default:
		delete(m.members, meta.Name) // failed: it may come back; raft keeps it
	}
	m.mu.Unlock()
	m.kick()
}

// alive returns the members gossip currently sees alive, sorted by name.
func (m *membership) alive() []memberMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]memberMeta, 0, len(m.members))
	for _, mm := range m.members {
		out = append(out, mm)
	}
	slices.SortFunc(out, func(a, b memberMeta) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// clientAddr returns the client address of a member by name.
func (m *membership) clientAddr(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mm, ok := m.members[name]
	return mm.Client, ok
}

func (m *membership) takeLeft() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.left {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (m *membership) forgetLeft(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.left, name)
}

func (m *membership) leave() {
	m.metaMu.Lock()
	m.self.Leaving = true
	if meta, err := json.Marshal(m.self); err == nil {
		m.meta = meta
	}
	m.metaMu.Unlock()
	if err := m.ml.UpdateNode(time.Second); err != nil {
		m.s.log.Warn("gossip update before leaving", "err", err)
	}
	if err := m.ml.Leave(2 * time.Second); err != nil {
		m.s.log.Warn("gossip leave", "err", err)
	}
}

func (m *membership) shutdown() { m.ml.Shutdown() }

// gossipDelegate hands memberlist this member's metadata.
type gossipDelegate struct{ m *membership }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	d.m.metaMu.Lock()
	defer d.m.metaMu.Unlock()
	if len(d.m.meta) > limit {
		return nil
	}
	return d.m.meta
}
func (gossipDelegate) NotifyMsg([]byte)                           {}
func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// reconcileLoop keeps raft's configuration in step with gossip: it
// bootstraps the cluster once --bootstrap-expect members see each other,
// and on the leader adds members gossip found and removes members that
// left gracefully. A member that failed stays in the configuration: it may
// come back with its data.
func (s *Server) reconcileLoop() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		case <-s.members.changed:
		}
		if len(s.members.joinTo) > 0 && s.members.ml.NumMembers() < 2 {
			if err := s.members.join(s.members.joinTo); err != nil {
				s.log.Debug("join", "err", err)
			}
		}
		s.members.savePeers()
		if s.node.hasState() {
			s.members.setHasState()
			s.members.rejoinMissing(s.peers(), time.Now())
		}
		s.maybeBootstrap()
		if s.node.raft.State() == raft.Leader {
			s.reconcileRaft()
		}
	}
}

// maybeBootstrap bootstraps raft with the first BootstrapExpect members by
// name once that many are alive, if this member has no raft state yet and
// is one of them. Every one of them does the same with the same list.
func (s *Server) maybeBootstrap() {
	if s.cfg.BootstrapExpect < 2 || s.node.hasState() || s.members.anyHasState() {
		return
	}
	alive := s.members.alive()
	if len(alive) < s.cfg.BootstrapExpect {
		return
	}
	alive = alive[:s.cfg.BootstrapExpect]
	var conf raft.Configuration
	self := false
	for _, mm := range alive {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(mm.Name), Address: raft.ServerAddress(mm.Raft), Suffrage: raft.Voter})
		self = self || mm.Name == s.cfg.Name
	}
	if !self {
		return
	}
	if err := s.node.raft.BootstrapCluster(conf).Error(); err != nil {
		s.log.Warn("bootstrap", "err", err)
		return
	}
	s.node.bootstrapped = true
	s.members.setHasState()
	s.log.Info("bootstrapped cluster", "members", len(conf.Servers))
}

// sameIncarnation reports whether a raft address names the incarnation.
func sameIncarnation(addr raft.ServerAddress, incarnation string) bool {
	a, err := parseRaftAddr(string(addr))
	return err == nil && a.incarnation == incarnation
}

func (s *Server) reconcileRaft() {
	servers := s.peers()
	inRaft := map[string]raft.Server{}
	for _, p := range servers {
		inRaft[string(p.ID)] = p
	}
	for _, mm := range s.members.alive() {
		p, ok := inRaft[mm.Name]
		if ok && mm.Name != s.cfg.Name && !sameIncarnation(p.Address, mm.Incarnation) {
			// A member of the configuration came back without its data.
			// Its old self cannot answer any more (its raft address names
			// the old incarnation): take the old self out, then add the
			// new one, which gets the log from this leader and has cast no
			// vote yet.
			if err := s.changeConfig(func() raft.Future { return s.node.raft.RemoveServer(p.ID, 0, s.cfg.ApplyTimeout) }); err != nil {
				s.log.Warn("remove member that lost its data", "member", mm.Name, "err", err)
				continue
			}
			s.log.Warn("member came back without its data; re-adding it", "member", mm.Name, "incarnation", mm.Incarnation)
			ok = false
		}
		if ok && string(p.Address) == mm.Raft {
			continue
		}
		if err := s.changeConfig(func() raft.Future {
			return s.node.raft.AddVoter(raft.ServerID(mm.Name), raft.ServerAddress(mm.Raft), 0, s.cfg.ApplyTimeout)
		}); err != nil {
			s.log.Warn("add member", "member", mm.Name, "err", err)
			continue
		}
		s.log.Info("added member", "member", mm.Name, "raft", mm.Raft)
	}
	for _, name := range s.members.takeLeft() {
		if name == s.cfg.Name {
			continue
		}
		if _, ok := inRaft[name]; !ok {
			s.members.forgetLeft(name)
			continue
		}
		if err := s.changeConfig(func() raft.Future { return s.node.raft.RemoveServer(raft.ServerID(name), 0, s.cfg.ApplyTimeout) }); err != nil {
			s.log.Warn("remove member", "member", name, "err", err)
			continue
		}
		s.members.forgetLeft(name)
		s.log.Info("removed member that left", "member", name)
	}
}
