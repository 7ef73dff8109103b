package transport

import (
	"fmt"
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// startHost builds the libp2p host: only the configured listen addresses,
// TCP (and QUIC without a PSK), Noise then TLS, the gater, scaled default
// resource limits, a connection manager, and none of relay, NAT port
// mapping, hole punching or metrics.
func (t *Transport) startHost(key crypto.PrivKey) error {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	// libp2p's default connection rate limit (0.2/s per IP after a burst,
	// loopback exempt) applies to our own dials too, which would throttle
	// the redial of absent members; the gater paces inbound attempts
	// instead (InterceptAccept).
	base, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()),
		rcmgr.WithConnRateLimiters(&rate.Limiter{}))
	if err != nil {
		return fmt.Errorf("transport: resource manager: %w", err)
	}
	rm := &watchingRM{ResourceManager: base, g: t.gater, psk: t.cfg.PSK != nil}
	cm, err := connmgr.NewConnManager(connLow, connHigh, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		rm.Close()
		return fmt.Errorf("transport: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		// Listening starts in listen, once every handler is in place.
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(t.tcpDialer)),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ConnectionGater(t.gater),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(agentString(t.cfg.Region)),
	}
	if t.cfg.PSK != nil {
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(t.cfg.PSK)))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return fmt.Errorf("transport: libp2p host: %w", err)
	}
	t.h, t.cm = h, cm

	h.Network().Notify(t.notifiee())
	// A connection may have come in before Notify; count it now
	// (connected ignores a connection it already knows).
	for _, c := range h.Network().Conns() {
		if !c.IsClosed() {
			t.connected(h.Network(), c)
		}
	}
	for id := range t.cfg.allowed {
		if id != h.ID() {
			cm.Protect(id, protectTag)
		}
	}
	h.SetStreamHandler(SyncProtocol, t.handleStream)
	h.SetStreamHandler(MembersProtocol(t.cfg.Mesh), t.handleRecords)
	return nil
}

// listen starts accepting connections on the configured addresses. It runs
// once the stream handlers and gossipsub are in place: a member redialing
// a restarted peer connects within milliseconds, and a push of its member
// records or its gossip subscription refused in that moment as an
// unsupported protocol waited for the next periodic push (30 s).
func (t *Transport) listen() error {
	if err := t.h.Network().Listen(t.cfg.listen...); err != nil {
		return fmt.Errorf("transport: listen on %v: %w", t.cfg.listen, err)
	}
	return nil
}

// watchingRM is the resource manager with a watch on inbound connections:
// one whose scope ends before its peer was set never completed the
// handshake (wrong PSK, not libp2p, refused by the gater), which the gater
// counts and paces.
type watchingRM struct {
	network.ResourceManager
	g   *gater
	psk bool
}

func (r *watchingRM) OpenConnection(dir network.Direction, usefd bool, endpoint multiaddr.Multiaddr) (network.ConnManagementScope, error) {
	sc, err := r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil || dir != network.DirInbound {
		return sc, err
	}
	return &watchedScope{ConnManagementScope: sc, rm: r, remote: endpoint}, nil
}

type watchedScope struct {
	network.ConnManagementScope
	rm     *watchingRM
	remote multiaddr.Multiaddr
	admit  atomic.Bool
	done   atomic.Bool
}

func (s *watchedScope) SetPeer(p peer.ID) error {
	err := s.ConnManagementScope.SetPeer(p)
	if err == nil {
		s.admit.Store(true)
	}
	return err
}

func (s *watchedScope) Done() {
	if !s.done.Swap(true) && !s.admit.Load() {
		s.rm.g.handshakeFailed(s.remote, s.rm.psk)
	}
	s.ConnManagementScope.Done()
}

var _ network.Notifiee = (*network.NotifyBundle)(nil)

// tcpDialer returns the dialer of an outbound TCP connection to raddr:
// from an ephemeral port (no port reuse), and, for a loopback destination,
// from this host's loopback listen address (else the kernel picks
// 127.0.0.1). libp2p's port reuse makes both sides dial from their listen
// ports: two peers redialling each other at once can then meet in a TCP
// simultaneous open, which the security handshake cannot complete, and a
// port pair still held by a connection closed during a cut made libp2p
// fall back to an unbound dial, from 127.0.0.1 on loopback. Peers on one
// machine each listening on their own loopback address (tests, the bench)
// thus always talk between those two addresses.
func (t *Transport) tcpDialer(raddr multiaddr.Multiaddr) (tcp.ContextDialer, error) {
	d := &net.Dialer{}
	ip, err := manet.ToIP(raddr)
	if err != nil || !ip.IsLoopback() {
		return d, nil
	}
	v4 := ip.To4() != nil
	for _, la := range t.cfg.listen {
		if addrKind(la) != "tcp" {
			continue
		}
		lip, err := manet.ToIP(la)
		if err == nil && lip.IsLoopback() && (lip.To4() != nil) == v4 {
			d.LocalAddr = &net.TCPAddr{IP: lip}
			break
		}
	}
	return d, nil
}
