package transport

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// gater decides who may connect: members of the allowlist (everyone when it
// is empty) that are not blocked. It refuses outbound dials early and
// inbound connections once the remote peer id is authenticated
// (InterceptSecured), before any stream can be opened. It also paces
// inbound connection attempts per remote address (InterceptAccept), so
// that a refused or misbehaving peer costs a few handshakes per second at
// most.
type gater struct {
	self    peer.ID
	allowed map[peer.ID]struct{} // nil: open mesh; never modified after New
	stats   *counters
	log     *keyedLog
	lim     *acceptLimiter

	mu      sync.RWMutex
	blocked map[peer.ID]struct{}

	refused atomic.Uint64
	// securedRefused holds the remote addresses of inbound connections
	// InterceptSecured refused, so that the end of their handshake is not
	// counted again as a handshake failure.
	securedRefused sync.Map // string -> struct{}
}

func newGater(self peer.ID, allowed map[peer.ID]struct{}, stats *counters, log *keyedLog) *gater {
	return &gater{
		self: self, allowed: allowed, stats: stats, log: log,
		lim:     newAcceptLimiter(),
		blocked: make(map[peer.ID]struct{}),
	}
}

// member reports whether p is on the allowlist (always true without one).
func (g *gater) member(p peer.ID) bool {
	if p == g.self || g.allowed == nil {
		return true
	}
	_, ok := g.allowed[p]
	return ok
}

func (g *gater) isBlocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.blocked[p]
	return ok
}

// permitted reports whether a connection with p is allowed now.
func (g *gater) permitted(p peer.ID) bool {
	return p == g.self || (g.member(p) && !g.isBlocked(p))
}

// block adds p to the blocklist and reports whether it was not there yet.
func (g *gater) block(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, had := g.blocked[p]
	g.blocked[p] = struct{}{}
	return !had
}

// unblock removes p from the blocklist and reports whether it was there.
func (g *gater) unblock(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, had := g.blocked[p]
	delete(g.blocked, p)
	return had
}

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	return g.permitted(p)
}

func (g *gater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(addrs network.ConnMultiaddrs) bool {
	ip := remoteIP(addrs.RemoteMultiaddr())
	if g.lim.accept(ip, time.Now()) {
		return true
	}
	g.stats.refuse(RefuseRateLimited)
	g.log.Warn("accept/"+ip.String(), "transport: refusing connections from an address that keeps being refused or connects too often",
		"reason", RefuseRateLimited, "remote", ip)
	return false
}

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.permitted(p) {
		return true
	}
	g.refused.Add(1)
	reason := RefuseBlocked
	if !g.member(p) {
		reason = RefuseNotMember
	}
	if dir == network.DirInbound {
		g.stats.refuse(reason)
		g.securedRefused.Store(addrs.RemoteMultiaddr().String(), struct{}{})
		g.lim.refused(remoteIP(addrs.RemoteMultiaddr()), time.Now())
	}
	msg := "transport: refused connection: peer not in the allowlist"
	if reason == RefuseBlocked {
		msg = "transport: refused connection: peer is blocked"
	}
	g.log.Warn("secured/"+reason+"/"+string(p), msg,
		"reason", reason, "peer", p, "direction", dir.String(), "remote", addrs.RemoteMultiaddr())
	return false
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// handshakeFailed is called when an inbound connection ends before the
// remote peer was authenticated and admitted: a wrong PSK, another
// protocol, a failed security or muxer negotiation, or a gater refusal
// (counted already).
func (g *gater) handshakeFailed(remote multiaddr.Multiaddr, psk bool) {
	if _, ok := g.securedRefused.LoadAndDelete(remote.String()); ok {
		return
	}
	ip := remoteIP(remote)
	g.stats.refuse(RefuseHandshake)
	g.lim.refused(ip, time.Now())
	msg := "transport: refused connection: handshake failed"
	if psk {
		msg = "transport: refused connection: handshake failed (a peer with another PSK, or not libp2p?)"
	}
	g.log.Warn("handshake/"+ip.String(), msg, "reason", RefuseHandshake, "remote", remote)
}

func remoteIP(a multiaddr.Multiaddr) netip.Addr {
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// Accept pacing per remote address. Every accepted connection takes a token
// from the address's accept bucket (acceptBurst, refilled at acceptRate a
// second): ample for members, whose dials are paced by RedialInterval.
// Every refusal (allowlist, handshake) takes a token from its refusal
// bucket (refuseBurst, refilled at refuseRate); while that bucket is empty
// the address is refused before any handshake. A refused peer thus costs
// about refuseRate handshakes a second, whatever it does.
const (
	acceptRate  = 10.0
	acceptBurst = 20.0
	refuseRate  = 1.0
	refuseBurst = 3.0
	limiterMax  = 4096 // addresses tracked; idle ones are dropped beyond it
)

type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if b.at.IsZero() {
		b.tokens, b.at = burst, now
		return
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
}

type ipState struct {
	accept, refuse bucket
}

type acceptLimiter struct {
	mu  sync.Mutex
	ips map[netip.Addr]*ipState
}

func newAcceptLimiter() *acceptLimiter {
	return &acceptLimiter{ips: make(map[netip.Addr]*ipState)}
}

func (l *acceptLimiter) state(ip netip.Addr, now time.Time) *ipState {
	st := l.ips[ip]
	if st == nil {
		if len(l.ips) >= limiterMax {
			for k, s := range l.ips {
				if now.Sub(s.accept.at) > time.Minute && now.Sub(s.refuse.at) > time.Minute {
					delete(l.ips, k)
				}
			}
		}
		st = &ipState{}
		l.ips[ip] = st
	}
	st.accept.refill(now, acceptRate, acceptBurst)
	st.refuse.refill(now, refuseRate, refuseBurst)
	return st
}

// accept reports whether a connection from ip may proceed to the
// handshake, taking an accept token.
func (l *acceptLimiter) accept(ip netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(ip, now)
	if st.refuse.tokens < 1 || st.accept.tokens < 1 {
		return false
	}
	st.accept.tokens--
	return true
}

// refused takes a refusal token from ip.
func (l *acceptLimiter) refused(ip netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(ip, now)
	st.refuse.tokens = max(0, st.refuse.tokens-1)
}
