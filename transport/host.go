package transport

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// startHost builds the libp2p host: only the configured listen addresses,
// TCP (and QUIC without a PSK), Noise then TLS, the gater, scaled default
// resource limits, a connection manager, and none of relay, NAT port
// mapping, hole punching or metrics.
func (t *Transport) startHost(key crypto.PrivKey) error {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return fmt.Errorf("transport: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(connLow, connHigh, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		rm.Close()
		return fmt.Errorf("transport: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(t.cfg.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
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
	return nil
}

var _ network.Notifiee = (*network.NotifyBundle)(nil)
