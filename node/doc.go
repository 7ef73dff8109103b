// Package node is the sessionmesh peer that edge services embed: sessions
// kept in a persist store, replicated to the other peers by batched delta
// gossip and repaired by anti-entropy, with no master and no locks.
//
// # Using it
//
//	n, err := node.Open(ctx, cfg)        // cfg.Dial: the network (p2pnode.Open: libp2p)
//	token, err := n.Create(ctx, node.WithFields(map[string][]byte{"user": []byte("alice")}))
//	s, err := n.Get(ctx, token)          // local read, no network
//	err = n.Set(ctx, token, "cart", []byte("3"))
//	newToken, err := n.Renew(ctx, token) // at login: new token, old one destroyed
//	err = n.Destroy(ctx, newToken)        // logout, final on every peer
//	for ch := range n.Watch(ctx) { ... } // local and remote changes
//	err = n.Close(ctx)                   // flushes pending deltas
//
// Tokens carry 256 bits from the configured random source. Peers store and
// replicate only SessionID(token), a SHA-256 of it, so a copied data
// directory, a log line or a captured delta cannot be used to take over a
// session. Get, Touch and the writes take the token.
//
// Every write is a delta applied to the local store first (durable as
// Config.Durability says when the call returns), then batched and broadcast:
// a write never waits for the network. Concurrent writes to different fields
// of one session merge, here and across peers; writes to the same field go to
// the later timestamp everywhere.
//
// Touches are cheap: a touch that moves last access by less than
// Config.TouchFraction of the idle timeout stays on this peer (not stored,
// not sent). Another peer may therefore expire an idle session up to
// TouchFraction × IdleTimeout earlier than this one (3 minutes for the
// defaults, 10% of 30 minutes).
//
// # Session consistency
//
// A read on one peer may miss a write just made on another. A caller that
// keeps the session's Version (WithVersion: every call stores the version
// it read or wrote, and honours the one it is given) reads its own writes
// and never goes back in time on any peer: the peer waits for replication,
// asks the peers that wrote what it misses for the session after
// Config.ConsistencyFetchAfter, and fails with ErrStale after
// Config.ConsistencyWait rather than answer older data. Versions are
// version vectors kept in the session (crdt.Version). docs/consistency.md
// has the guarantees with and without a version.
//
// # Owners and revocation
//
// A session may have an owner, an application user id kept as a hash
// (WithOwner, SetOwner). Any peer lists an owner's sessions
// (OwnerSessions), destroys one (DestroyOwned) or revokes them all
// (RevokeOwner): a register "every session of this owner created before T
// is destroyed" that merges by maximum, so that no write from the other
// side of a partition undoes it.
//
// # Partial replication
//
// With Config.Replicas = R (default 0: every peer holds every session) each
// region holds each session on R of its peers: sessions fall in 4096 slots
// (the anti-entropy buckets) placed by rendezvous hashing over the region's
// members, which peers learn from a hello message on every connection. A
// peer stores only the slots it holds, answers reads of the others from
// their holders (one hop, then a short-lived cache), keeps its writes of
// the others until every holder of its region stored them (hinted
// handoff), and compares only shared slots by anti-entropy.
// docs/partial-replication.md has the rules; Placement reports the state
// and SetReplicas changes R on a running peer.
//
// # Built to be simulated
//
// Decisions live in Core, a state machine in the manner of etcd-io/raft's
// RawNode: it takes events (a local operation, Core.Local; a message; a
// peer coming or going; a tick at a given time) and hands back a Ready
// value, carried out in order: Storage (writes, bucket reads, collection
// passes, run by the runtime outside the core's lock and reported back
// with Core.Stored), then broadcasts and messages, then acknowledgements,
// changes and ended rounds. A local write is acknowledged only once the
// store reported it durable (as Config.Durability says), and broadcast only
// then; it never waits on the network. The Core has no goroutines, does no
// I/O and reads neither the wall clock nor global randomness; time and a
// seed are inputs. Node drives it with goroutines over a Network (reads
// stay lock-free: Core.Visible); the simulator drives the same Core, the
// same Local operations and the same StorageOp.Run, on one goroutine over
// a virtual network. The times Node passes carry a monotonic reading, so
// the Core's timers keep their intervals when the wall clock is stepped;
// the simulator's virtual times have none, and it reports a step with
// Core.ClockStepped instead.
//
// # Anti-entropy
//
// On every new connection, every SyncInterval (jittered, a random peer)
// and on Sync, a round compares the two stores: the initiator sends its
// root digest (8 bytes; peers that agree stop there), the responder its
// 4096 bucket digests, and the initiator a plan: the buckets that differ,
// each sent whole where one side holds nothing, and summarised first (8
// bytes of id hash and 8 of state hash per session) where both hold
// sessions, so that only what differs crosses. Both sides then stream
// their part bucket by bucket, reading the store a chunk (SyncChunkBytes)
// at a time, with at most four chunks unacknowledged: a chunk is
// acknowledged once the receiver stored it, and each side ends with the
// count of what it sent, so a lost message fails the round instead of
// completing it. Memory per round is bounded by that window whatever the
// store size. A round that stalls for SyncTimeout fails; what it stored
// stays stored, and the next round, comparing digests again, resumes with
// the buckets that still differ. At most MaxConcurrentSyncs rounds run at
// once. Rounds that repaired something are logged at info level.
//
// Deltas stamped more than MaxDrift ahead of local time are kept aside and
// retried every second (up to MaxDeferred), and anti-entropy offers them
// again; the node estimates each peer's clock offset from the send times in
// anti-entropy messages (Peers) and warns when its own clock is off from
// most peers.
package node
