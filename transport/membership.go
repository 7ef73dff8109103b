package transport

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multiaddr"
)

// Member is a known mesh member: learned from Config.Bootstrap, from
// other members' signed peer records, from an inbound connection, or from
// the member list persisted in Config.DataDir.
type Member struct {
	ID     peer.ID
	Addrs  []multiaddr.Multiaddr // where it is dialled (without /p2p)
	Region string                // its Config.Region, once known ("" if none)
	// Connected: a connection is open and the member answers pings.
	Connected bool
	// Since is when Connected last changed (when the member was learned,
	// if it has never been connected).
	Since time.Time
	// LastSeen is the last proof of life (connection up, ping answered,
	// direct frame received); zero if never.
	LastSeen time.Time
}

// quickDrop is how long a connection must last not to count as refused: a
// peer that accepts and then closes at once (its gater refused us, or a
// protocol failed) is backed off as if the dial had failed.
const quickDrop = 3 * time.Second

// maxRefusedBackoff caps the redial interval of a member that keeps
// closing our connections right after they open.
const maxRefusedBackoff = 30 * time.Second

// member is the state of one known member. Fields after mu's comment are
// guarded by Transport.memMu.
type member struct {
	id   peer.ID
	boot bool          // from Config.Bootstrap: never forgotten automatically
	wake chan struct{} // capacity 1
	stop chan struct{} // closed when forgotten

	// guarded by Transport.memMu
	addrs      []multiaddr.Multiaddr
	region     string
	connected  bool
	since      time.Time
	lastSeen   time.Time
	learned    time.Time
	upAt       time.Time // when the current or last connection opened
	quickDrops int       // consecutive connections that closed within quickDrop
	reset      bool      // next probe without waiting (set by Unblock)
	wasUp      bool      // has been connected since learned
	// hearsay: learned from another member's record and not connected
	// since (counted in membership.unconnected).
	hearsay    bool
	dialCancel func() // cancels the dial in flight, if any
	// foreign: identify showed it does not speak this mesh's
	// MembersProtocol (another mesh, or an older sessionmesh): its record
	// is not passed on, so a misconfigured bootstrap address does not
	// merge two meshes' member lists.
	foreign bool
}

func (m *member) wakeUp() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// membership holds the known members.
type membership struct {
	mu        sync.Mutex
	members   map[peer.ID]*member
	forgotten map[peer.ID]tombstone // records not newer than these are ignored
	// unconnected counts the members learned from records and never
	// connected since (member.hearsay), which Config.MaxUnconnectedMembers
	// bounds.
	unconnected int
}

// tombstone remembers a forgotten member: its record's seq when it was
// forgotten, so that other members passing on that record do not bring it
// back. It is kept (and saved) for tombstoneTTL.
type tombstone struct {
	seq uint64
	at  time.Time
}

// tombstoneTTL is how long a forgotten member's old records are ignored:
// ForgetAfter (by then the other members have forgotten it too), or its
// default when members are never forgotten automatically.
func (t *Transport) tombstoneTTL() time.Duration {
	if t.cfg.ForgetAfter > 0 {
		return t.cfg.ForgetAfter
	}
	return DefaultForgetAfter
}

// learn adds id as a member if it is new and may be one (not self, on the
// allowlist), with addrs to dial it at, and starts its loop. It returns
// the member (nil if refused) and whether it is new or its addresses
// changed. addrs, when non-empty, replace the known ones.
func (t *Transport) learn(id peer.ID, addrs []multiaddr.Multiaddr, source string) (*member, bool) {
	return t.learnFrom(id, addrs, source, false)
}

// learnFrom is learn; hearsay marks a member learned from another member's
// record, counted in unconnected until it connects.
func (t *Transport) learnFrom(id peer.ID, addrs []multiaddr.Multiaddr, source string, hearsay bool) (*member, bool) {
	if id == "" || id == t.h.ID() || !t.gater.member(id) || t.closed.Load() {
		return nil, false
	}
	now := time.Now()
	ms := &t.mem
	ms.mu.Lock()
	m := ms.members[id]
	if m != nil {
		changed := len(addrs) > 0 && !sameAddrs(m.addrs, addrs)
		if changed {
			m.addrs = slices.Clone(addrs)
			t.persistDirty()
		}
		ms.mu.Unlock()
		if len(addrs) > 0 {
			t.h.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
		}
		return m, changed
	}
	if !t.enter() {
		ms.mu.Unlock()
		return nil, false
	}
	delete(ms.forgotten, id)
	m = &member{
		id:      id,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		addrs:   slices.Clone(addrs),
		since:   now,
		learned: now,
	}
	ms.members[id] = m
	if hearsay {
		m.hearsay = true
		ms.unconnected++
	}
	t.persistDirty()
	ms.mu.Unlock()

	if len(addrs) > 0 {
		t.h.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
	}
	t.cm.Protect(id, protectTag)
	t.stats.membersJoined.Add(1)
	t.memberLog.Info(string(id)+"/joined", "transport: member joined", "peer", id, "source", source, "addrs", addrs)
	go func() {
		defer t.leave()
		t.memberLoop(m)
	}()
	return m, true
}

func sameAddrs(a, b []multiaddr.Multiaddr) bool {
	return slices.EqualFunc(a, b, func(x, y multiaddr.Multiaddr) bool { return x.Equal(y) })
}

// memberUp records that a connection to a permitted peer opened (the first
// one): the peer becomes a member if it was not one.
func (t *Transport) memberUp(id peer.ID) {
	if t.mem.members == nil {
		return // a Transport without a host (unit tests of the tracker)
	}
	m, _ := t.learn(id, nil, "connection")
	if m == nil {
		return
	}
	now := time.Now()
	t.mem.mu.Lock()
	away := now.Sub(m.since)
	back := m.wasUp && !m.connected
	// A member that closed the last connection right after it opened
	// (refused?) is not reported back at each retry: the quick drop is
	// what is logged, and a connection that lasts resets quickDrops.
	refusing := m.quickDrops > 0
	if m.hearsay {
		m.hearsay = false
		t.mem.unconnected--
	}
	m.connected, m.since, m.lastSeen, m.upAt, m.wasUp = true, now, now, now, true
	// A dial still in flight is moot (the other side dialled us): stop
	// it, so that the member loop starts pinging at once.
	if m.dialCancel != nil {
		m.dialCancel()
	}
	t.persistDirty()
	t.mem.mu.Unlock()
	switch {
	case back && refusing:
		t.log.Debug("transport: member connected again after closing the last connection at once", "peer", id, "away", away.Round(time.Millisecond))
	case back:
		t.memberLog.Info(string(id)+"/up", "transport: member back", "peer", id, "away", away.Round(time.Millisecond))
	}
	m.wakeUp()
}

// memberDown records that the last connection to id closed.
func (t *Transport) memberDown(id peer.ID) {
	if t.mem.members == nil {
		return
	}
	now := time.Now()
	t.mem.mu.Lock()
	m := t.mem.members[id]
	if m == nil || !m.connected {
		t.mem.mu.Unlock()
		return
	}
	lasted := now.Sub(m.upAt)
	m.connected, m.since = false, now
	if lasted < quickDrop {
		m.quickDrops++
	} else {
		m.quickDrops = 0
	}
	quick := m.quickDrops
	t.persistDirty()
	t.mem.mu.Unlock()
	t.stats.membersLost.Add(1)
	if quick > 0 {
		t.stats.quickDrops.Add(1)
		t.memberLog.Info(string(id)+"/down", "transport: member closed the connection right after it opened (refused?)",
			"peer", id, "lasted", lasted.Round(time.Millisecond), "times", quick)
	} else {
		t.memberLog.Info(string(id)+"/down", "transport: member lost", "peer", id, "connected_for", lasted.Round(time.Second))
	}
	m.wakeUp()
}

// touch records proof of life from id (a frame received).
func (t *Transport) touch(id peer.ID) {
	now := time.Now()
	t.mem.mu.Lock()
	if m := t.mem.members[id]; m != nil {
		m.lastSeen = now
	}
	t.mem.mu.Unlock()
}

// Members returns every known member except this host, sorted by id.
func (t *Transport) Members() []Member {
	if t.closed.Load() {
		return nil
	}
	t.mem.mu.Lock()
	out := make([]Member, 0, len(t.mem.members))
	for _, m := range t.mem.members {
		out = append(out, Member{
			ID:        m.id,
			Addrs:     slices.Clone(m.addrs),
			Region:    m.region,
			Connected: m.connected,
			Since:     m.since,
			LastSeen:  m.lastSeen,
		})
	}
	t.mem.mu.Unlock()
	for i := range out {
		if r := t.PeerRegion(out[i].ID); r != "" {
			out[i].Region = r
		}
		if len(out[i].Addrs) == 0 {
			out[i].Addrs = t.h.Peerstore().Addrs(out[i].ID)
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Forget drops member id: its connections are closed, it is no longer
// redialled, and it leaves the persisted member list. Records of it that
// other members pass on are ignored unless newer than the one known when
// it was forgotten, so a peer that restarts (a new record) or connects to
// us again becomes a member again: Forget is for members that are gone for
// good; to exclude a live peer, take it out of AllowedPeers (or Block it).
// It returns ErrUnknownPeer if id is not a member.
func (t *Transport) Forget(id peer.ID) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if !t.forget(id, "by request") {
		return fmt.Errorf("transport: forget %s: %w", id, ErrUnknownPeer)
	}
	return nil
}

func (t *Transport) forget(id peer.ID, why string) bool {
	var seq uint64
	if env := t.cab().GetPeerRecord(id); env != nil {
		if r, err := env.Record(); err == nil {
			if pr, ok := r.(*peer.PeerRecord); ok {
				seq = pr.Seq
			}
		}
	}
	t.mem.mu.Lock()
	m := t.mem.members[id]
	if m == nil {
		t.mem.mu.Unlock()
		return false
	}
	delete(t.mem.members, id)
	if m.hearsay {
		t.mem.unconnected--
	}
	t.mem.forgotten[id] = tombstone{seq: seq, at: time.Now()}
	close(m.stop)
	t.persistDirty()
	t.mem.mu.Unlock()

	t.cm.Unprotect(id, protectTag)
	if _, allowed := t.cfg.allowed[id]; allowed {
		t.cm.Protect(id, protectTag) // members of the allowlist stay protected
	}
	_ = t.h.Network().ClosePeer(id)
	t.h.Peerstore().ClearAddrs(id)
	t.stats.membersForgotten.Add(1)
	t.log.Info("transport: member forgotten", "peer", id, "why", why)
	return true
}

// memberLoop keeps one member connected: while it is connected it pings it
// (watch), while it is not it dials it every RedialInterval (jittered),
// until it is forgotten or the transport closes.
func (t *Transport) memberLoop(m *member) {
	var (
		lastDial time.Time // start of the last dial
		jf       float64   // jitter factor of the pause after it
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-m.stop:
			return
		default:
		}
		if t.tracker.isUp(m.id) {
			t.watch(m)
			// The first dial after a loss comes at a random point of the
			// redial cycle: both sides notice a cut at the same moment,
			// and dialling in phase would make the two probes one.
			lastDial, jf = time.Now(), mrand.Float64()
			continue
		}
		now := time.Now()
		t.mem.mu.Lock()
		if m.reset {
			m.reset, lastDial = false, time.Time{}
		}
		quick, boot := m.quickDrops, m.boot
		absent := now.Sub(latest(m.lastSeen, m.learned, t.started))
		addrs := slices.Clone(m.addrs)
		t.mem.mu.Unlock()
		next := lastDial.Add(time.Duration(float64(t.redialPause(quick)) * jf))
		var wait time.Duration
		switch {
		case t.gater.isBlocked(m.id):
			wait = time.Hour // until Unblock wakes us
		case !boot && t.cfg.ForgetAfter > 0 && absent >= t.cfg.ForgetAfter:
			t.forget(m.id, fmt.Sprintf("unreachable for %v", absent.Round(time.Second)))
			return
		case now.Before(next):
			wait = next.Sub(now)
		default:
			lastDial, jf = now, 0.8+0.4*mrand.Float64()
			err := t.dialMember(m, addrs, boot)
			if t.ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && handshakeFailed(err):
				// The member answers but the handshake fails: a
				// configuration problem, not the network.
				t.memberLog.Warn(string(m.id)+"/handshake", "transport: handshake with member failed (another PSK, or not a libp2p host at that address?)",
					"peer", m.id, "err", err)
			case err != nil:
				t.log.Debug("transport: dial failed", "peer", m.id, "err", err)
			}
			continue // connected or not, look again
		}
		timer.Reset(wait)
		select {
		case <-t.ctx.Done():
			return
		case <-m.stop:
			return
		case <-m.wake:
		case <-timer.C:
		}
	}
}

// redialPause is the pause between two dials of an absent member, before
// jitter (±20%, so that peers do not dial in lockstep): RedialInterval,
// doubled for each connection in a row that the member closed right after
// it opened (a refusal), up to maxRefusedBackoff.
func (t *Transport) redialPause(quickDrops int) time.Duration {
	d := t.cfg.RedialInterval
	for i := 0; i < quickDrops && d < maxRefusedBackoff; i++ {
		d *= 2
	}
	return min(d, max(maxRefusedBackoff, t.cfg.RedialInterval))
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// dialMember makes one dial attempt to m within DialTimeout, bypassing
// libp2p's dial backoff (the member loop paces its own dials). It does not
// wait for identify.
func (t *Transport) dialMember(m *member, addrs []multiaddr.Multiaddr, boot bool) error {
	if len(addrs) > 0 {
		t.h.Peerstore().AddAddrs(m.id, addrs, peerstore.PermanentAddrTTL)
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	t.mem.mu.Lock()
	m.dialCancel = cancel
	t.mem.mu.Unlock()
	defer func() {
		t.mem.mu.Lock()
		m.dialCancel = nil
		t.mem.mu.Unlock()
	}()
	ctx = network.WithForceDirectDial(ctx, "sessionmesh member dial")
	t.stats.dialAttempts.Add(1)
	_, err := t.h.Network().DialPeer(ctx, m.id)
	if err != nil && !t.tracker.isUp(m.id) {
		t.stats.dialsFailed.Add(1)
		if boot {
			t.stats.bootDialsFailed.Add(1)
		}
		return fmt.Errorf("transport: dial %s: %w", m.id, err)
	}
	return nil
}

// pingInterval is how often a connected member is pinged.
func (t *Transport) pingInterval() time.Duration {
	return max(t.cfg.FailureTimeout/4, 50*time.Millisecond)
}

// watch pings a connected member every pingInterval over one ping stream
// (libp2p's ping protocol) until its last connection closes. A member
// that has given no sign of life (ping answer, frame) for FailureTimeout
// is declared lost: its connections are closed, so the handler gets
// PeerDown and the member loop starts redialling.
func (t *Transport) watch(m *member) {
	var s network.Stream
	defer func() {
		if s != nil {
			_ = s.Reset()
		}
	}()
	t.mem.mu.Lock()
	alive := m.lastSeen // set when the connection opened
	t.mem.mu.Unlock()
	tick := time.NewTicker(t.pingInterval())
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-m.stop:
			return
		case <-m.wake:
		case <-tick.C:
		}
		if !t.tracker.isUp(m.id) {
			return
		}
		t.mem.mu.Lock()
		alive = latest(alive, m.lastSeen)
		t.mem.mu.Unlock()
		deadline := alive.Add(t.cfg.FailureTimeout)
		ok := t.pingOnce(&s, m.id, deadline)
		now := time.Now()
		if ok {
			alive = now
			t.mem.mu.Lock()
			m.lastSeen = now
			t.mem.mu.Unlock()
			continue
		}
		t.mem.mu.Lock()
		alive = latest(alive, m.lastSeen)
		t.mem.mu.Unlock()
		if now.Sub(alive) >= t.cfg.FailureTimeout && t.tracker.isUp(m.id) {
			t.stats.failuresDetected.Add(1)
			t.memberLog.Info(string(m.id)+"/silent", "transport: member stopped answering, closing its connections",
				"peer", m.id, "silent_for", now.Sub(alive).Round(time.Millisecond))
			_ = t.h.Network().ClosePeer(m.id)
			return
		}
	}
}

// pingOnce sends one ping on *s (opening it if nil, on an existing
// connection only) and waits for the echo until deadline. On failure the
// stream is reset and *s cleared.
func (t *Transport) pingOnce(s *network.Stream, id peer.ID, deadline time.Time) bool {
	if *s == nil {
		ctx, cancel := context.WithDeadline(t.ctx, deadline)
		ctx = network.WithNoDial(ctx, "ping")
		ns, err := t.h.NewStream(ctx, id, ping.ID)
		cancel()
		if err != nil {
			return false
		}
		*s = ns
	}
	fail := func() bool {
		_ = (*s).Reset()
		*s = nil
		return false
	}
	var out, in [ping.PingSize]byte
	_, _ = rand.Read(out[:])
	if err := (*s).SetDeadline(deadline); err != nil {
		return fail()
	}
	if _, err := (*s).Write(out[:]); err != nil {
		return fail()
	}
	if _, err := io.ReadFull(*s, in[:]); err != nil || in != out {
		return fail()
	}
	return true
}

// handshakeFailed reports whether a dial error says the remote answered
// but the security or muxer negotiation failed (libp2p's upgrader has no
// sentinel errors for it).
func handshakeFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to negotiate security protocol") ||
		strings.Contains(msg, "failed to negotiate stream multiplexer")
}
