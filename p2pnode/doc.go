// Package p2pnode opens sessionmesh nodes over libp2p: a node.Node whose
// network is the transport package's (gossipsub broadcast, direct sync
// streams, membership, failure detection), configured by one Config that
// holds both.
//
//	cfg := p2pnode.DefaultConfig()
//	cfg.DataDir = "/var/lib/sessionmesh"
//	cfg.Transport.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/4001"}
//	cfg.Transport.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."}
//	n, err := p2pnode.Open(ctx, cfg)
//	token, err := n.Create(ctx)       // n embeds *node.Node
//	addrs := n.Transport().Addrs()     // the libp2p side
//
// Package node itself links no libp2p: it reaches the network through
// node.Network and node.Dialer, which this package implements, so the
// simulator and embedders with their own network do not carry libp2p.
// Gossip is checked with node.ValidateGossip before libp2p accepts or
// forwards it, so a malformed or oversized batch never spreads.
package p2pnode
