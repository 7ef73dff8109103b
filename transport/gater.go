package transport

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// gater decides who may connect: members of the allowlist (everyone when it
// is empty) that are not blocked. It refuses outbound dials early and
// inbound connections once the remote peer id is authenticated
// (InterceptSecured), before any stream can be opened.
type gater struct {
	self    peer.ID
	allowed map[peer.ID]struct{} // nil: open mesh; never modified after New
	log     *slog.Logger

	mu      sync.RWMutex
	blocked map[peer.ID]struct{}

	refused atomic.Uint64
}

func newGater(self peer.ID, allowed map[peer.ID]struct{}, log *slog.Logger) *gater {
	return &gater{self: self, allowed: allowed, log: log, blocked: make(map[peer.ID]struct{})}
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

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.permitted(p) {
		return true
	}
	g.refused.Add(1)
	g.log.Debug("transport: refused connection", "peer", p, "direction", dir.String(),
		"remote", addrs.RemoteMultiaddr(), "member", g.member(p))
	return false
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
