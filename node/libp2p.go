package node

import (
	"context"
	"fmt"

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

// Peer ids cross into the node in their text form (12D3KooW...), so that
// logs and metric labels are printable.
func toPeerID(id peer.ID) PeerID { return PeerID(id.String()) }

func (a *libp2pNetwork) Self() PeerID { return toPeerID(a.t.ID()) }

func (a *libp2pNetwork) Broadcast(ctx context.Context, data []byte) error {
	return a.t.Broadcast(ctx, data)
}

func (a *libp2pNetwork) Send(ctx context.Context, to PeerID, data []byte) error {
	id, err := peer.Decode(string(to))
	if err != nil {
		return fmt.Errorf("node: send to %q: %w", to, err)
	}
	return a.t.Send(ctx, id, data)
}

func (a *libp2pNetwork) Close() error { return a.t.Close() }

func (a *libp2pNetwork) HandleGossip(from peer.ID, data []byte) {
	a.in.HandleGossip(toPeerID(from), data)
}
func (a *libp2pNetwork) HandleDirect(from peer.ID, data []byte) {
	a.in.HandleDirect(toPeerID(from), data)
}
func (a *libp2pNetwork) PeerUp(id peer.ID)   { a.in.PeerUp(toPeerID(id)) }
func (a *libp2pNetwork) PeerDown(id peer.ID) { a.in.PeerDown(toPeerID(id)) }

// Transport returns the libp2p transport of a node opened with one, for its
// addresses, peers and statistics; nil otherwise.
func (n *Node) Transport() *transport.Transport {
	if a, ok := n.net.(*libp2pNetwork); ok {
		return a.t
	}
	return nil
}
