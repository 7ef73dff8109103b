// Package simulations runs the real sessionmesh node code (node.Core over
// persist stores) under a virtual clock and a virtual network,
// deterministically from a seed, and judges whether the mesh kept its
// promises: convergence, no lost write, no resurrection, no expired session
// served, read-your-writes.
//
// # Using it
//
//	sc, err := simulations.LoadScenario("three-region-split-heal") // a file, or a shipped scenario
//	res, err := simulations.Run(sc, 42)                            // err: the run could not be judged
//	fmt.Print(res.Summary())                                       // res.Verdict.Pass, res.Figures
//	err = res.WriteDir("out")  // scenario.yaml, trace.jsonl, verdict.json, metrics.csv, report.html
//
// Main implements the command line (`sessionmesh sim run|replay|sweep|shrink|list`):
// run exits 0 when every expectation holds, 1 when one fails and 2 when the
// run could not be judged; replay re-runs a recorded directory and fails
// unless it reproduces the recorded fingerprint; sweep runs many seeds on
// every core and names the failing ones.
//
// # The engine
//
// One goroutine runs one event loop over a priority queue ordered by (true
// time, sequence number), so that events due at the same instant run in the
// order they were scheduled. Every random choice comes from a math/rand/v2
// PCG stream of its own, seeded by the run's seed and named by what it is
// for and the nodes it concerns (streams.go): a link's delays, losses and
// duplicates; a node's clients and their tokens; a node's core seeds; a
// dialer's jitter; the faults. A draw therefore depends on what its own
// part of the mesh did and not on how the rest was interleaved with it,
// and removing a node or a fault (sim shrink) leaves the other streams as
// they were. The same scenario and seed give the same run, bit for bit, on
// the same architecture. The run ends with a fingerprint, a SHA-256 over every event
// (deliveries with a hash of their bytes, ticks, operations, faults,
// connection changes) and every node's final digests.
//
// Each node is a node.Core over a persist store opened in memory
// (persist.InMemoryOptions, background collection off). The engine does
// for a core what node.Node does: it calls Tick when Core.Next is due,
// delivers messages with ReceiveGossip and ReceiveDirect, tells both ends
// of a connection PeerUp and PeerDown, and carries out each Ready: a
// broadcast goes to every connected peer, each copy over its own link; a
// direct message goes over the link to its peer. Every call into a core or
// its store gets that node's local time.
//
// Clocks: a node's local time is true time plus an offset, drifting by a
// rate in parts per million; faults step it or change its drift, beyond the
// drift bound if the scenario says so. A step moves what has wall-clock
// meaning (the HLC's stamps, session expiry, the drift bound's admission
// of future stamps) but not the core's timers: in production those are
// deadlines made by now.Add and compared with a later time.Now(), whose
// monotonic readings no wall-clock step moves, and the virtual times have
// no monotonic reading, so the engine tells the core of each step
// (node.Core.ClockStepped), which moves its pending timers by the step.
//
// Network: each directed link has a delay and a uniform jitter (from the
// region latency matrix, so jitter reorders), a loss and a duplication
// probability. Faults block links (partitions, one-way partitions, flapping
// links) or degrade them. A connection between two nodes follows the
// transport's lifecycle, with package transport's own parameters unless
// the scenario overrides them (Network.Transport): a silent cut leaves it
// up at both ends, losing what is sent over it, until failure detection
// (pings every FailureTimeout/4, lost after FailureTimeout without an
// answer) drops it (PeerDown at both ends); the redial loops of both ends
// (a dial at once, then every RedialInterval ±20%, each bounded by
// DialTimeout, its SYN retransmitted after 1 s, 3 s...) bring it back
// (PeerUp at both ends, which starts anti-entropy) two round trips after a
// SYN gets through. A flap shorter than detection loses messages without
// dropping the connection. A message in flight is lost if its link goes
// down, its connection is replaced, or either end crashes before it
// arrives. Readiness can be made to depend on peers (ready_min_peers), to
// show what draining an isolated region costs.

// Crash and restart: a crash drops the core with everything it held in
// memory (the pending gossip batch, anti-entropy rounds, deferred deltas)
// and every connection at once, as the operating system resets a dead
// process's sockets. The store keeps what the mode promises (see
// Durability and disks). A restart builds a new core over the same store.
// A late joiner starts at its time with an empty store.
//
// Session ids are hashes of tokens drawn from the seed (node.SessionID, as
// in production), so every seed spreads its sessions over other digest
// buckets; the figures say how many buckets a run covered.
//
// Workload: every node that takes traffic runs a Poisson process of client
// operations (create, set, remove, touch, renew, destroy, read) at
// the scenario's rates. Operations pick a session among those the clients
// know, by a Zipf law over age, homed on the node or, with probability
// Roam, anywhere. Writes go through the node's own path: a node.LocalOp
// from the node's visible state into Core.Local (which decides, stamps,
// and applies lazy touches, as for Node's Create, Update, Touch, Destroy
// and Renew), then the storage, broadcast and acknowledgement the Core
// hands out, carried out as Node carries them. The clients of the
// consistency workload (versioned writes, owners, revocations) use the same
// path.
// Clients keep using a destroyed session for Workload.Linger (other tabs,
// requests in flight), so writes after a destroy happen where the destroy
// has not arrived yet.
//
// # The checkers
//
// The checkers see what clients saw (acknowledged operations and what
// every operation read) and, at the end, every live node's store:
//
//   - converge_within: measured from the last heal (the end of the last
//     fault or the start of the last late joiner; without either, the end
//     of the workload). When the workload has stopped by then, until every
//     running node holds the same digest (persist Digests.Root) for good;
//     when traffic goes on past the heal, until every running node holds
//     every write acknowledged before the heal (found through change
//     events, or by a look at the stores at each sample: a write merged
//     into a newer state reports no change), and the digests must agree
//     at the end. The run goes on for Quiet after the settle point, when
//     the workload has stopped and every fault has healed.
//
//   - lost_writes: an acknowledged write missing from a live node's final
//     state and not superseded: a field's value must be there under its
//     timestamp or under a later one that some client wrote (compared by
//     crdt.Field order); a create, touch or destroy must be reflected.
//     Sessions past their absolute deadline at that node are skipped, and
//     writes only ever held by a node that is down at the end are reported
//     as stranded, not judged.
//
//   - resurrections: a session served by a node after that node applied
//     its destroy, live again in the store of a node that had applied its
//     destroy (a copy arriving after the tombstone was collected), or
//     visible anywhere at the end after an acknowledged destroy.
//
//   - expired_served: a session served at a node's local time at or past
//     its absolute deadline, or past the latest last access any client
//     caused plus its idle timeout.
//
//   - read_your_writes_violations: the node that wrote a field serves an
//     older one, or says a session it wrote to does not exist though it has
//     neither applied a destroy nor seen it expire.
//
//   - reconnect_within: from the last heal until every two running nodes
//     are connected again.
//
//   - merge_determinism: every session's acknowledged deltas are merged
//     again in several seeded orders; the results must agree, and, once
//     the mesh has converged, equal every live replica (sessions that
//     expired, or hold writes a power loss may lose or that only a down
//     node held, are left out). Tie probes merge pairs of the run's
//     deltas with equal timestamps both ways round, so an order-dependent
//     tie-break is caught whether or not the run produced a tie.
//
//   - deferred_stranded: a delta deferred (stamped beyond the drift bound)
//     must be applied within 2 s of the bound admitting it (the core
//     retries every second); later, or never, means it sat stranded in a
//     deferred queue or was dropped from a full one.
//
// Divergence during faults (the most distinct digests and unreplicated
// pairs in any sample while a fault is active) is reported, not judged.
//
// A test-only hook rewrites deltas in flight, wraps the stores the cores
// see (an anti-entropy that never sends one bucket, deferred deltas the
// core never hears of) or acknowledges writes without storing them (or
// handoffs: partial replication); a merge that breaks timestamp ties by
// arrival order is planted in crdt, and placement in learning order in
// internal/placement, by the sessionmesh_plant build tag, which no other
// build has. The planted
// suite (planted_test.go; go test -tags sessionmesh_plant -run Planted)
// requires each bug to be caught by its checker within 10 seeds of a
// bundled scenario: a checker that cannot fail proves nothing.
//
// # Partial replication
//
// With config.replicas (node.Config.Replicas) each core gets its region and
// places slots by itself, from the hellos it exchanges over the virtual
// connections (docs/partial-replication.md): it keeps what it holds, hands
// the rest off to the holders and drops it once they acknowledged it
// (simStore.Drop, node.Dropper), pulls gained slots by anti-entropy. A
// client's operation on a session its node does not hold reads it as Node
// does: the core asks the holders (Core.ReadRemote), their answers come
// back through the network to the waiting read (node.FetchAnswer), merged
// with the node's own copy taken when the read began; no answer and no
// copy makes the operation unavailable (node.ErrUnavailable). Node's cache
// of remote reads is not modelled. Membership churn is nodes that start
// late (new, empty) and crashes without a restart (gone for good).
//
// The checkers then judge against the placement the nodes should agree on
// once membership is stable (internal/placement over the running nodes of
// each region): lost_writes and merge_determinism look at the holders only,
// converge_within waits until the holders of every slot agree and no other
// node stores any of it, and three more checks run:
//
//   - under_replicated: at the end, every live session (its writes
//     acknowledged by, or replicated to, a node still running) has at least
//     min(R, running nodes of the region) stores holding every acknowledged
//     write of it, in every region.
//
//   - unsafe_drops: when a node drops a session it handed off, its region
//     keeps at least R other stores (running or not) holding everything the
//     dropped copy held.
//
//   - stale_remote_reads: 2 s before the end every session is read once,
//     through the network, on a running node that does not hold it; when
//     a holder answers, the read must hold every acknowledged write of a
//     live session, and show no destroyed one.
//
// Read-your-writes holds a remote read to the writes its node made before
// the read began. Not modelled with replicas: durability none, and the
// versioned clients (Workload.Consistency).
//
// # Durability and disks
//
// Each node runs a persist durability mode (sync, group, none). A crash of
// the process loses nothing acknowledged in any mode; a power loss
// (power_loss on a crash) loses, under none, the writes since the node's
// last background fsync (persist's SyncInterval), and lost_writes allows
// exactly those that no other node held yet. A disk fault fails every
// write of a node for a while: it refuses its clients' writes and its core
// keeps remote deltas for a retry. Storage badger runs every node on a
// Badger store in a temporary directory (the node's own durability mode,
// real fsyncs), for slower, fuller runs.
//
// # Not modelled
//
//   - gossipsub's machinery: mesh degree, IHAVE/IWANT, the message cache
//     and its ~3 s of memory, peer scoring. Gossip is a direct best-effort
//     fan-out to every connected peer; whatever it loses stays lost until
//     anti-entropy repairs it.
//   - the time a disk takes: group commit's window and fsync latency.
//   - bandwidth and queueing: a message's delay does not depend on its
//     size or on other traffic, and send queues never overflow.
//   - the transport's membership protocol, discovery and allowlists: every
//     node knows every member and dials it (the lifecycle above is
//     modelled, not run: the transport's code needs real sockets).
//
// # Scenarios
//
// A scenario is YAML, decoded strictly (an unknown field is an error): the
// regions and their latency matrix, the nodes (with clocks, start times
// and durability modes), the storage backend, the transport's lifecycle
// parameters, node.Config overrides, the workload (with phases: named
// periods with their own rates per node, region or side), the fault
// schedule (partitions, one-way partitions, flaps, periodic or random,
// degradations, both ways or one, crashes with or without a power loss,
// disk faults, clock steps and drifts), the quiet period and the
// expectations. Validation errors name the path of the bad field
// (faults[3].one_way.to). See Scenario for every field, and scenarios/ for
// the shipped library (Library lists them).
//
// # Shrinking
//
// `sim shrink DIR` takes a failing run and searches, greedily, for a
// smaller scenario (fewer faults and nodes, shorter, fewer operations)
// that fails one of the checks the run failed with the same seed, and
// writes it with its seed (Shrink).
package simulations
