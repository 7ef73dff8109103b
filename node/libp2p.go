package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/transport"
)

// libp2pDialer runs the node over the libp2p transport described by tc.
// Gossip is checked with ValidateGossip before libp2p accepts or forwards
// it, so a malformed or oversized batch never spreads.
func libp2pDialer(cfg Config) Dialer {
	return func(ctx context.Context, in Inbound) (Network, error) {
		tc := cfg.Transport
		if tc.DataDir == "" {
			tc.DataDir = cfg.DataDir
		}
		if tc.Logger == nil {
			tc.Logger = cfg.Logger
		}
		limits := cfg.Limits
		tc.ValidateGossip = func(_ peer.ID, data []byte) error { return ValidateGossip(data, limits) }
		a := &libp2pNetwork{in: in}
		t, err := transport.New(ctx, tc, a)
		if err != nil {
			return nil, err
		}
		a.t = t
		return a, nil
	}
}

// libp2pNetwork adapts a transport.Transport to Network, and its Handler
// calls to Inbound.
type libp2pNetwork struct {
	t  *transport.Transport
	in Inbound
}

func (a *libp2pNetwork) Self() PeerID { return PeerID(a.t.ID()) }

func (a *libp2pNetwork) Broadcast(ctx context.Context, data []byte) error {
	return a.t.Broadcast(ctx, data)
}

func (a *libp2pNetwork) Send(ctx context.Context, to PeerID, data []byte) error {
	return a.t.Send(ctx, peer.ID(to), data)
}

func (a *libp2pNetwork) Close() error { return a.t.Close() }

func (a *libp2pNetwork) HandleGossip(from peer.ID, data []byte) {
	a.in.HandleGossip(PeerID(from), data)
}
func (a *libp2pNetwork) HandleDirect(from peer.ID, data []byte) {
	a.in.HandleDirect(PeerID(from), data)
}
func (a *libp2pNetwork) PeerUp(id peer.ID)   { a.in.PeerUp(PeerID(id)) }
func (a *libp2pNetwork) PeerDown(id peer.ID) { a.in.PeerDown(PeerID(id)) }

// Transport returns the libp2p transport of a node opened with one, for its
// addresses, peers and statistics; nil otherwise.
func (n *Node) Transport() *transport.Transport {
	if a, ok := n.net.(*libp2pNetwork); ok {
		return a.t
	}
	return nil
}
