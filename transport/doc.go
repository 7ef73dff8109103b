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
// # Membership, failure detection, redial
//
// Every host keeps a list of mesh members (Members): its bootstrap peers,
// every permitted peer that connects to it, and every peer named in the
// signed peer records (libp2p envelopes, as identify exchanges them) that
// other members of the same mesh pass on over MembersProtocol. A record is
// used only if its signature verifies and names the signing key's own peer
// id, and only for peers on the allowlist, so a member cannot make up
// another peer's addresses or bring in an outsider. One bootstrap address
// is thus enough to learn the whole mesh, and later joins and address
// changes spread the same way. A bootstrap entry may also be a
// /dnsaddr/<name> whose TXT records list peers (libp2p's dnsaddr scheme),
// resolved every minute, for orchestrated deployments. With a DataDir the
// list is kept in DataDir/members.json (MembersFile), so a restarted host
// redials every member it knew; members forgotten (Forget, ForgetAfter)
// are kept there too, so that other members passing on their old records
// do not bring them back.
//
// A connected member is pinged (libp2p's ping protocol) every
// FailureTimeout/4; one that gives no sign of life for FailureTimeout is
// declared lost and its connections are closed, so a silent cut is noticed
// within FailureTimeout (4 s by default) instead of TCP's minutes. A member
// that is not connected is dialled every RedialInterval (1 s, jittered),
// each attempt bounded by DialTimeout, so a healed link is back within about
// a second whatever the cut lasted, for about one dial per second per
// absent member. A member that closes our connections right after they open
// (it refuses us) is redialled at a doubling interval, up to 30 s. A member
// unreachable for ForgetAfter (72 h; bootstrap peers excepted) is
// forgotten, and Forget does it by hand. Members joining, lost, back and
// forgotten are logged at info level (at most one line per member and
// event every 10 s).
//
// Send never dials: it uses an open connection or fails at once, so a
// caller retrying Sends cannot turn a refusing peer into a dial storm.
//
// # Refusals
//
// Inbound connections refused (not on the allowlist, blocked, handshake
// failed: with a PSK usually the wrong key) are counted by reason
// (Stats.Refused) and logged at warn level, at most once per remote and
// reason every 10 s. Each refusal also costs the remote address a token of
// a small bucket (3, refilled at 1 a second): while it is empty, that
// address's connections are closed before any handshake (reason
// "rate_limited"), so a misconfigured or hostile peer costs about one
// handshake a second. Every address may also open at most 10 connections a
// second (20 in a burst).
//
// # Discovery
//
// Beyond members, hosts find each other through Connect, and, when
// Config.MDNS is on, through mDNS on the LAN (only hosts of the same mesh
// name answer). There is no DHT, no public bootstrap node, no relay and no
// NAT port mapping: the hosts must be able to dial each other's listen
// addresses. Gossip crosses hosts that are not directly connected by
// relaying along the gossipsub mesh.
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
// partition (block on both sides). Unblock(id) lifts it and redials id at
// once if it is a member.
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
