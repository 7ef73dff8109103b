// Package transport is sessionmesh's libp2p layer. It knows bytes and peer
// ids, nothing of sessions or CRDTs: the node package hands it encoded
// messages and receives encoded messages through a Handler.
//
// # Usage
//
// Fill a Config (start from DefaultConfig), implement Handler, and call New.
// The transport then
//
//   - gossips: Broadcast publishes on the mesh topic
//     "/sessionmesh/<Mesh>/deltas/1" (gossipsub, signed messages, flood
//     publish); every message from another host passes the size bound, the
//     membership checks and Config.ValidateGossip before it is delivered to
//     Handler.HandleGossip and forwarded. A host never receives its own
//     messages.
//   - sends direct messages: Send writes one length-prefixed frame to one
//     peer over the stream protocol "/sessionmesh/sync/1.0.0" (one reused
//     stream per peer); the peer's Handler.HandleDirect receives it.
//   - reports membership: Handler.PeerUp when the first connection to a
//     permitted peer opens, Handler.PeerDown when its last one closes, in
//     order, from a single goroutine.
//
// Close stops everything; no Handler method runs after it returns.
//
// # Closed meshes
//
// A mesh can be closed two ways, which combine:
//
//   - Config.PSK, a 32-byte private-network key: the connection itself is
//     encrypted with it before any libp2p handshake, so a host without the
//     key cannot even learn our peer id. Private networks run on TCP only,
//     because libp2p refuses a PSK on QUIC.
//   - Config.AllowedPeers: connections from or to any other peer id are
//     refused once the remote id is authenticated (connection gater), and
//     gossip authored or forwarded by a non-member is rejected.
//
// Without either, any libp2p host that can reach us may connect and gossip.
//
// # Discovery
//
// Hosts find each other through Config.Bootstrap (multiaddrs ending in
// /p2p/<id>, dialled at start and redialled with exponential backoff up to
// about 30 s while disconnected), through Connect, and, when Config.MDNS is
// on, through mDNS on the LAN (only hosts of the same mesh name answer).
// There is no DHT, no public bootstrap node, no relay and no NAT port
// mapping: the hosts must be able to dial each other's listen addresses.
// Gossip crosses hosts that are not directly connected by relaying along
// the gossipsub mesh, so a connected graph is enough.
//
// # Regions
//
// Config.Region labels a host ("eu-west"). Each host announces it in the
// user agent of the libp2p identify exchange ("sessionmesh/<version>
// region=<region>"), and PeerRegion reads a connected peer's from the
// peerstore once identify has run; PeerAddrs gives the addresses known for
// it. The label is for operators (the daemon's /v1/peers) and changes no
// behaviour.
//
// # Block
//
// Block(id) refuses new connections to and from id, closes the open ones,
// ignores gossip authored or forwarded by id and makes Send to it fail. It
// is what an operator's ban uses, and what tests use to cut a link in a
// partition (block on both sides). Unblock(id) lifts it and redials id if
// it is a bootstrap peer or was connected before.
//
// # Guarantees
//
// Gossip is best effort. A message reaches the peers that are on the topic
// and reachable through the mesh when it is published; a peer that
// connects later, is partitioned, or whose queue overflows does not get it
// (gossipsub only re-offers messages of the last few seconds). A new
// connection carries gossip only after the two hosts have exchanged
// subscriptions (GossipPeers) and a forwarding mesh forms at the next
// gossipsub heartbeat (up to a second later). Within gossipsub's 2-minute
// seen-cache a message is delivered at most once, but it may come again
// later: applying it must be idempotent. Anti-entropy over direct messages
// is what repairs what gossip missed.
//
// Direct messages may fail: Send returns an error when no stream can be
// opened or written in time, and a frame handed to a connection that then
// breaks is lost without an error. Frames larger than
// Config.MaxMessageBytes are refused with ErrTooLarge before anything is
// sent.
package transport
