package node

import (
	"context"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Network is what the node needs from the network: best-effort broadcast to
// the mesh and direct messages to one peer. The transport package provides
// it over libp2p; tests and the simulator provide their own.
type Network interface {
	Self() PeerID
	Broadcast(ctx context.Context, data []byte) error
	Send(ctx context.Context, to PeerID, data []byte) error
	Close() error
}

// Inbound is how a Network hands the node what it receives. The node gives
// one to its Dialer (Node itself does not export these methods, so only
// the network it dialled can deliver); the calls may come from any
// goroutine.
type Inbound interface {
	HandleGossip(from PeerID, data []byte)
	HandleDirect(from PeerID, data []byte)
	PeerUp(id PeerID)
	PeerDown(id PeerID)
}

// LossInbound is the Inbound a Node gives its Dialer, for a network that
// knows when gossip was lost with a peer (a broadcast its queue to the peer
// had no room for, a message from it this side could not take in):
// GossipLost has anti-entropy start with that peer soon, rather than at a
// periodic round that happens to choose it. It takes the node's lock: call
// it from a goroutine of the network's own, not from one that must not
// wait.
type LossInbound interface {
	Inbound
	GossipLost(p PeerID)
}

// Dialer builds the node's Network once the node exists to receive from it.
type Dialer func(ctx context.Context, in Inbound) (Network, error)

// BatchInbound is the Inbound a Node gives its Dialer: a network that
// validated a gossip message with DecodeGossip hands over the batch it
// decoded, so that the message is not decoded again.
type BatchInbound interface {
	Inbound
	HandleGossipBatch(from PeerID, b *crdt.Batch)
}
