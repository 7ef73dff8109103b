package p2pnode

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/transport"
)

// Config configures a node and its libp2p network. Start from
// DefaultConfig.
type Config struct {
	node.Config
	// Transport configures the libp2p network (listen addresses, bootstrap
	// peers, mesh name, pre-shared key, allowlist). Its DataDir and Logger
	// default to the node's, so the peer keeps its id across restarts.
	Transport transport.Config
}

// DefaultConfig returns node.DefaultConfig and transport.DefaultConfig.
func DefaultConfig() Config {
	return Config{Config: node.DefaultConfig(), Transport: transport.DefaultConfig()}
}

// Validate checks both halves.
func (c Config) Validate() error {
	if err := c.Transport.Validate(); err != nil {
		return err
	}
	cfg := c.Config
	if cfg.Dial == nil {
		cfg.Dial = Dialer(c)
	}
	return cfg.Validate()
}

// Node is a node.Node on libp2p.
type Node struct {
	*node.Node
	t *transport.Transport
}

// Transport returns the node's libp2p transport, for its addresses, peers
// and statistics.
func (n *Node) Transport() *transport.Transport { return n.t }

// Open starts a peer over libp2p: node.Open with the network of
// cfg.Transport.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var net *network
	nc := cfg.Config
	dial := Dialer(cfg)
	nc.Dial = func(ctx context.Context, in node.Inbound) (node.Network, error) {
		nw, err := dial(ctx, in)
		if err == nil {
			net = nw.(*network)
		}
		return nw, err
	}
	n, err := node.Open(ctx, nc)
	if err != nil {
		return nil, err
	}
	return &Node{Node: n, t: net.t}, nil
}

// Dialer returns the node.Dialer of cfg.Transport, for node.New over a
// store of the caller's.
func Dialer(cfg Config) node.Dialer {
	return func(ctx context.Context, in node.Inbound) (node.Network, error) {
		tc := cfg.Transport
		if tc.DataDir == "" {
			tc.DataDir = cfg.DataDir
		}
		if tc.Logger == nil {
			tc.Logger = cfg.Logger
		}
		limits := cfg.Limits
		// Decoded once, in the validator; the batch reaches the node with
		// the message (BatchInbound).
		tc.DecodeGossip = func(_ peer.ID, data []byte) (any, error) { return node.DecodeGossip(data, limits) }
		a := &network{in: in}
		t, err := transport.New(ctx, tc, a)
		if err != nil {
			return nil, err
		}
		a.t = t
		return a, nil
	}
}

// network adapts a transport.Transport to node.Network, and its Handler
// calls to node.Inbound.
type network struct {
	t  *transport.Transport
	in node.Inbound
}

// Peer ids cross into the node in their text form (12D3KooW...), so that
// logs and metric labels are printable.
func toPeerID(id peer.ID) node.PeerID { return node.PeerID(id.String()) }

func (a *network) Self() node.PeerID { return toPeerID(a.t.ID()) }

func (a *network) Broadcast(ctx context.Context, data []byte) error {
	return a.t.Broadcast(ctx, data)
}

func (a *network) Send(ctx context.Context, to node.PeerID, data []byte) error {
	id, err := peer.Decode(string(to))
	if err != nil {
		return fmt.Errorf("p2pnode: send to %q: %w", to, err)
	}
	return a.t.Send(ctx, id, data)
}

func (a *network) Close() error { return a.t.Close() }

func (a *network) HandleGossip(from peer.ID, data []byte) {
	a.in.HandleGossip(toPeerID(from), data)
}

// HandleDecodedGossip implements transport.DecodedGossipHandler.
func (a *network) HandleDecodedGossip(from peer.ID, data []byte, decoded any) {
	b, ok := decoded.(*crdt.Batch)
	bi, isBatch := a.in.(node.BatchInbound)
	if !ok || !isBatch {
		a.in.HandleGossip(toPeerID(from), data)
		return
	}
	bi.HandleGossipBatch(toPeerID(from), b)
}
func (a *network) HandleDirect(from peer.ID, data []byte) {
	a.in.HandleDirect(toPeerID(from), data)
}

// GossipLost implements transport.GossipLossHandler.
func (a *network) GossipLost(p peer.ID) {
	if li, ok := a.in.(node.LossInbound); ok {
		li.GossipLost(toPeerID(p))
	}
}

func (a *network) PeerUp(id peer.ID)   { a.in.PeerUp(toPeerID(id)) }
func (a *network) PeerDown(id peer.ID) { a.in.PeerDown(toPeerID(id)) }
