package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// PeerID identifies a peer on the network (a libp2p peer id in production).
type PeerID string

// Store is what the node needs from the durable replica; *persist.Store
// satisfies it.
type Store interface {
	Apply(b *crdt.Batch, now time.Time) (persist.Result, error)
	Get(id string) (*crdt.Session, error)
	Digests() *persist.Digests
	// DigestsInto is Digests into d, which the core reuses.
	DigestsInto(d *persist.Digests)
	// Root is Digests().Root, without the copy of every bucket.
	Root() uint64
	Buckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error) error
	CollectGarbage(now time.Time, budget int) (int, error)
}

// Message is a direct message for one peer.
type Message struct {
	To   PeerID
	Data []byte
}

// Ready is the work a Core hands out after a step: what to broadcast, what
// to send, and the remote changes to report. The runtime carries it out;
// the simulator delivers it over its virtual network.
//
// Its parts are carried out in order, as etcd-io/raft's runner does: first
// Storage (outside the Core's lock; each result goes back with
// Core.Stored, whose Ready then carries what depended on it), then
// Broadcasts and Messages, then Acks, Changes and Rounds. A broadcast or an
// acknowledgement never depends on a write of its own Ready: the Core
// emits it only once Stored reported the write durable.
type Ready struct {
	Storage    []StorageOp
	Broadcasts [][]byte
	// Messages are direct messages. Under partial replication they carry
	// the deltas of local writes too (kindDeltas, to the peers holding
	// them, in place of Broadcasts): like broadcasts, those must leave in
	// the order the Core made them (Node queues them under its lock).
	Messages []Message
	Acks     []Ack
	Changes  []Change
	// Rounds are the anti-entropy rounds that ended in the step, this
	// peer's side of each.
	Rounds []SyncReport
	// NotHeld are received deltas of sessions this peer does not hold
	// (partial replication), not stored: the runtime merges them into
	// what it caches of those sessions.
	NotHeld []*crdt.Session
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool {
	return len(r.Storage) == 0 && len(r.Broadcasts) == 0 && len(r.Messages) == 0 &&
		len(r.Acks) == 0 && len(r.Changes) == 0 && len(r.Rounds) == 0 && len(r.NotHeld) == 0
}

// Change is an entry of the change feed.
type Change struct {
	crdt.Change
	// Remote is set for changes that arrived from another peer (From).
	Remote bool
	From   PeerID
}

// PeerInfo describes a connected peer as this node sees it.
type PeerInfo struct {
	ID PeerID
	// ClockOffset estimates the peer's clock minus ours, from the send time
	// carried by anti-entropy messages (transit time counts against it);
	// ClockOffsetKnown is false until a message from the peer carried one.
	ClockOffset      time.Duration
	ClockOffsetKnown bool
	// LastSync is when the last anti-entropy round with it completed.
	LastSync time.Time
}

type peerState struct {
	offset     time.Duration
	haveOffset bool
	lastSync   time.Time
	warnedAt   time.Time // last clock offset warning about this peer
	// deferred: buckets that differed and that periodic rounds with this
	// peer left to gossip, since when (deferBucket).
	deferred map[int]time.Time
	// lost: deltas for this peer were lost on the way (DeltasLost); a
	// round with it starts at the Core's lostSyncAt.
	lost bool
}

// Core is the node's state machine: every decision (what a local operation
// writes, when to flush a batch, when to start an anti-entropy round and
// with whom, what to answer, when to collect garbage) is made here, from
// the events and times it is given. It does no I/O: writes, bucket reads
// and collection passes leave in Ready.Storage and come back through
// Stored. It has no goroutines and reads neither the wall clock nor global
// randomness, so the simulator can drive the same code as production. Core
// is not safe for concurrent use (Visible excepted): one caller at a time,
// then Ready.
type Core struct {
	cfg   Config
	self  PeerID
	store Store
	clock *crdt.Clock
	rng   *rand.Rand
	log   *slog.Logger
	m     Metrics

	// digests is where the core reads the store's digests, which it
	// needs at every anti-entropy round (32 KiB each).
	digests persist.Digests
	// digestBytes is where a digests message is packed before it is
	// encoded (which copies it) and where one received is decoded: 32 KiB
	// a round that would otherwise be garbage twice over.
	digestBytes []byte

	pending      *crdt.Batch
	pendingBytes int
	flushAt      time.Time
	// lastFlush is when pending was last broadcast: a delta arriving
	// FlushDelay or more after it leaves at once (LocalDelta).
	lastFlush time.Time

	deferred *crdt.Batch
	retryAt  time.Time

	peers    map[PeerID]*peerState
	rounds   map[roundKey]*round
	roundSeq uint64
	nextSync time.Time
	// lostSyncAt is when rounds start with the peers that lost deltas
	// (DeltasLost), zero when none did.
	lostSyncAt time.Time
	// changed is when a change last reached each bucket of the store here
	// (Unix ms), local or merged: periodic rounds leave the buckets in
	// motion to gossip (deferBucket).
	changed  [persist.Buckets]int64
	nextGC   time.Time
	gcBusy   bool
	warnedAt time.Time
	oldPeers map[PeerID]time.Time // last warning about a peer of an older protocol

	tickets uint64
	tasks   map[uint64]*task
	touches *touchTable
	// gapFetches: sessions asked for after a gap (repairGap), and when.
	gapFetches map[string]time.Time
	// parked: guarded deltas whose entries were dropped, joined per
	// session, retried once the session gains what they wait for (park).
	parked map[string]parkedDelta
	gapDue time.Time // the earliest fetchAt among parked, zero if none

	part *partial // partial replication (Config.Replicas > 0), else nil
	// partRO is part for readers outside the Core's lock (HoldsID).
	partRO atomic.Pointer[partial]
	// hellos are the regions and settings peers announced (partial.go);
	// announce: send ours on every new connection.
	hellos   map[PeerID]*partMember
	announce bool

	ready Ready
	// spare holds the slices of a Ready handed back by Recycle, for the
	// next one; freeTasks, tasks of remote batches already stored, for
	// the next batches (a peer takes one per message it receives).
	spare     Ready
	freeTasks []*task
}

// task is what the Core waits for from a StorageOp.
type task struct {
	local []*crdt.Session // a local write: acknowledge it
	wire  []*crdt.Session // ... what to broadcast of it, when not local

	from  PeerID      // a remote batch ("" for a deferred retry)
	retry bool        // ... parked deltas merged again (park)
	batch *crdt.Batch // ... its deltas
	// ... part of a round: credit it once stored
	inRound bool
	seq     uint32
	answer  bool

	scan  scanKind // a read for a round
	round roundKey

	gc bool

	part    partTask // partial replication's work (partial.go)
	partSeq uint64
}

// newTask returns an empty task: one done with (freeTask) when there is
// one.
func (c *Core) newTask() *task {
	if n := len(c.freeTasks); n > 0 {
		t := c.freeTasks[n-1]
		c.freeTasks[n-1] = nil
		c.freeTasks = c.freeTasks[:n-1]
		return t
	}
	return &task{}
}

// freeTask keeps t, whose StorageOp was reported and which nothing refers
// to any more, for newTask.
func (c *Core) freeTask(t *task) {
	if len(c.freeTasks) < maxFreeTasks {
		*t = task{}
		c.freeTasks = append(c.freeTasks, t)
	}
}

// batchTask returns a task for a batch from peer from.
func (c *Core) batchTask(from PeerID, b *crdt.Batch) *task {
	t := c.newTask()
	t.from, t.batch = from, b
	return t
}

// maxFreeTasks bounds the tasks kept for reuse.
const maxFreeTasks = 64

func (c *Core) newTicket(t *task) uint64 {
	c.tickets++
	c.tasks[c.tickets] = t
	return c.tickets
}

// Stored takes the result of a StorageOp of an earlier Ready.
func (c *Core) Stored(now time.Time, res StorageResult) {
	t, ok := c.tasks[res.Ticket]
	if !ok {
		return
	}
	delete(c.tasks, res.Ticket)
	switch {
	case t.part != 0:
		c.partStored(now, t, res)
	case t.local != nil:
		c.localDone(now, res.Ticket, t.local, t.wire, res)
		c.freeTask(t) // localDone keeps its deltas, not t
	case t.batch != nil:
		c.applied(now, t, res)
		c.freeTask(t) // applied keeps nothing of t
	case t.scan != 0:
		c.scanned(now, t, res)
	case t.gc:
		c.gcBusy = false
		if res.Err != nil {
			c.log.Error("garbage collection failed", "err", res.Err)
		} else if res.Collected > 0 {
			c.m.Add("sessions_collected", float64(res.Collected))
		}
		c.touches.sweep(now.UnixMilli())
		c.sweepParked(now)
	}
}

// NewCore returns a core for peer self over store, started at now, choosing
// peers with a generator seeded by seed.
func NewCore(cfg Config, self PeerID, store Store, node crdt.NodeID, seed uint64, now time.Time) *Core {
	c := &Core{
		cfg:      cfg,
		self:     self,
		store:    store,
		clock:    crdt.NewClock(node, cfg.MaxDrift),
		rng:      rand.New(rand.NewPCG(seed, uint64(node))),
		log:      cfg.Logger.With("component", "node", "peer", string(self)),
		m:        cfg.Metrics,
		pending:  crdt.NewBatch(),
		deferred: crdt.NewBatch(),
		peers:    make(map[PeerID]*peerState),
		rounds:   make(map[roundKey]*round),
		oldPeers: make(map[PeerID]time.Time),
		tasks:    make(map[uint64]*task),
		touches:  newTouchTable(),

		gapFetches: make(map[string]time.Time),
		parked:     make(map[string]parkedDelta),
		hellos:     make(map[PeerID]*partMember),
	}
	c.nextSync = now.Add(c.jitter(cfg.SyncInterval))
	// The first FlushDelay holds deltas back as every later one does.
	c.lastFlush = now
	c.nextGC = now.Add(cfg.GCInterval)
	if cfg.Replicas > 0 {
		newPartial(c, now)
	}
	return c
}

// jitter spreads periodic work over [d/2, 3d/2) so that peers do not all
// start rounds at once.
func (c *Core) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(c.rng.Int64N(int64(d)))
}

// Stamp issues a timestamp for a local write.
func (c *Core) Stamp(now time.Time) crdt.Timestamp { return c.clock.Now(now) }

// Ready returns and clears the work accumulated since the last call.
func (c *Core) Ready() Ready {
	r := c.ready
	c.ready, c.spare = c.spare, Ready{}
	return r
}

// Recycle hands back the slices of r, a Ready of this Core the caller has
// carried out entirely and keeps nothing of (the elements it kept, such as
// message data or batches, stay its own), so that a later Ready reuses
// them rather than allocating its own: a runtime stepping the Core for
// every message otherwise allocates a Ready's slices for each. Optional;
// each Ready at most once.
func (c *Core) Recycle(r Ready) {
	reuse(&c.ready.Storage, &c.spare.Storage, r.Storage)
	reuse(&c.ready.Broadcasts, &c.spare.Broadcasts, r.Broadcasts)
	reuse(&c.ready.Messages, &c.spare.Messages, r.Messages)
	reuse(&c.ready.Acks, &c.spare.Acks, r.Acks)
	reuse(&c.ready.Changes, &c.spare.Changes, r.Changes)
	reuse(&c.ready.Rounds, &c.spare.Rounds, r.Rounds)
	reuse(&c.ready.NotHeld, &c.spare.NotHeld, r.NotHeld)
}

// reuse empties s for Recycle, dropping what its elements refer to, and
// makes it the Core's next buffer of its kind (cur, when it has none yet,
// else spare); a slice grown large by a rare step is left to the
// collector.
func reuse[T any](cur, spare *[]T, s []T) {
	if cap(s) == 0 || cap(s) > 256 {
		return
	}
	clear(s)
	switch {
	case *cur == nil:
		*cur = s[:0]
	case *spare == nil:
		*spare = s[:0]
	}
}

// LocalDelta queues the deltas of one local change, already applied to the
// store, to be broadcast in a batch. The deltas of a change in several
// sessions (Renew) go out together in a batch of their own, which split
// cannot cut: a peer receives and applies all of them or none.
func (c *Core) LocalDelta(now time.Time, ds ...*crdt.Session) {
	for _, d := range ds {
		c.bucketChanged(now, d.ID)
	}
	switch {
	case len(ds) == 0:
		return
	case len(ds) > 1:
		// Whatever is pending goes first, in its own batches.
		c.flush(now)
		b := crdt.NewBatch(ds...)
		if err := c.broadcastBatch(b); errors.Is(err, crdt.ErrTooLarge) {
			// Over one message (a revocation's many tombstones, or
			// sessions near the size limit): in parts rather than not
			// at all. Each part is still applied whole.
			c.log.Debug("a change too large for one gossip message goes in parts", "sessions", b.Len())
			for _, part := range c.split(b.Sessions(), c.cfg.FlushBytes) {
				c.logBroadcast(c.broadcastBatch(part), part)
			}
		} else {
			c.logBroadcast(err, b)
		}
		return
	}
	c.pending.Add(ds[0])
	c.pendingBytes += approxSize(ds[0])
	if c.pendingBytes >= c.cfg.FlushBytes || c.pending.Len() >= c.cfg.Limits.MaxBatchSessions {
		c.flush(now)
		return
	}
	if c.flushAt.IsZero() {
		// Batches leave at most once every FlushDelay (unless full), on
		// the leading edge: a delta that finds the last batch FlushDelay
		// or more behind it leaves at once, so a peer writing less often
		// than that adds no wait to replication, and one writing more
		// often sends one message per FlushDelay, which bounds the
		// messages (and their signing and checking) per second.
		// A clock stepped back behind the last batch (times without a
		// monotonic reading, from a clock that does not report its
		// steps with ClockStepped) must not hold deltas back until it
		// catches up.
		if due := c.lastFlush.Add(c.cfg.FlushDelay); now.Before(due) && !now.Before(c.lastFlush) {
			c.flushAt = due
		} else {
			c.flush(now)
		}
	}
}

// Flush broadcasts whatever is pending now (Close calls it).
func (c *Core) Flush() { c.flush(time.Time{}) }

// flush broadcasts what is pending; now (zero on Close) starts the next
// FlushDelay.
func (c *Core) flush(now time.Time) {
	c.flushAt = time.Time{}
	if c.pending.Len() == 0 {
		return
	}
	c.lastFlush = now
	ss := c.pending.Sessions()
	if c.part == nil && c.fitsOne(ss, c.cfg.FlushBytes) {
		// Most flushes (one delta, on the leading edge): the pending
		// batch is the message as split would copy it, and gossipBatch
		// keeps nothing of it once encoded, so it is emptied for the
		// next deltas rather than copied and replaced.
		c.logBroadcast(c.broadcastBatch(c.pending), c.pending)
		*c.pending = crdt.Batch{}
	} else {
		for _, part := range c.split(ss, c.cfg.FlushBytes) {
			c.logBroadcast(c.broadcastBatch(part), part)
		}
		c.pending = crdt.NewBatch()
	}
	c.pendingBytes = 0
}

// fitsOne reports whether split would leave sessions in one batch.
func (c *Core) fitsOne(ss []*crdt.Session, limit int) bool {
	if len(ss) > c.cfg.Limits.MaxBatchSessions {
		return false
	}
	size := 0
	for i, s := range ss {
		n := approxSize(s)
		if i > 0 && size+n > limit {
			return false
		}
		size += n
	}
	return true
}

// broadcastBatch hands b to the network for the next Ready, or says why it
// cannot: as one gossip message, or under partial replication as direct
// messages to the peers that hold its sessions (deliverBatch).
func (c *Core) broadcastBatch(b *crdt.Batch) error {
	if c.part != nil {
		return c.deliverBatch(b)
	}
	return c.gossipBatch(b)
}

// gossipBatch encodes b as one gossip message for the next Ready.
func (c *Core) gossipBatch(b *crdt.Batch) error {
	data, err := crdt.MarshalBatch(b, c.cfg.Limits)
	if err != nil {
		return err
	}
	c.ready.Broadcasts = append(c.ready.Broadcasts, data)
	c.m.Add("batches_sent", 1)
	c.m.Add("deltas_sent", float64(b.Len()))
	c.m.Observe("batch_deltas", float64(b.Len()))
	c.m.Observe("batch_bytes", float64(len(data)))
	return nil
}

// logBroadcast logs a batch broadcastBatch could not encode: anti-entropy
// will carry it.
func (c *Core) logBroadcast(err error, b *crdt.Batch) {
	if err != nil {
		c.log.Error("dropping a batch that does not encode", "err", err, "sessions", b.Len())
	}
}

// split cuts sessions into batches of about limit bytes.
func (c *Core) split(ss []*crdt.Session, limit int) []*crdt.Batch {
	var out []*crdt.Batch
	cur, size := crdt.NewBatch(), 0
	for _, s := range ss {
		n := approxSize(s)
		if cur.Len() > 0 && (size+n > limit || cur.Len() >= c.cfg.Limits.MaxBatchSessions) {
			out = append(out, cur)
			cur, size = crdt.NewBatch(), 0
		}
		cur.Add(s)
		size += n
	}
	if cur.Len() > 0 {
		out = append(out, cur)
	}
	return out
}

// Next returns when the core next needs a Tick.
func (c *Core) Next() time.Time {
	next := c.nextSync
	earliest := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	earliest(c.nextGC)
	earliest(c.flushAt)
	earliest(c.gapDue)
	earliest(c.partNext())
	earliest(c.lostSyncAt)
	if c.deferred.Len() > 0 {
		earliest(c.retryAt)
	}
	for _, r := range c.rounds {
		earliest(r.deadline)
	}
	return next
}

// ClockStepped tells the core that the clock its times come from was
// stepped by d (a wall-clock correction; d < 0 steps it back): every
// pending timer, and every time kept to measure an elapsed interval
// against a later now, moves by d, so that each fires or expires after the
// interval it was set for, not d earlier or later. Times of wall-clock
// meaning stay: the HLC, session expiry and lifetimes, lazy touches (last
// access), the drift bound's admission of future stamps (a deferred delta
// waits for the wall clock; its periodic retry is a timer and moves), and
// the times reported as when something happened (PeerInfo.LastSync).
//
// Production never calls it: Node passes time.Now(), whose monotonic
// reading makes a deadline made by now.Add and compared with a later now
// immune to wall-clock steps, while the wall reading still drives stamps
// and expiry. The simulator's virtual times have no monotonic reading, so
// it calls ClockStepped when a fault steps a node's clock, to model that.
func (c *Core) ClockStepped(d time.Duration) {
	if d == 0 {
		return
	}
	shift := func(t *time.Time) {
		if !t.IsZero() {
			*t = t.Add(d)
		}
	}
	shift(&c.flushAt)
	shift(&c.lastFlush)
	shift(&c.retryAt)
	shift(&c.nextSync)
	shift(&c.lostSyncAt)
	shift(&c.nextGC)
	shift(&c.gapDue)
	shift(&c.warnedAt)
	for id, at := range c.oldPeers {
		c.oldPeers[id] = at.Add(d)
	}
	for _, p := range c.peers {
		shift(&p.warnedAt)
		for b, since := range p.deferred {
			p.deferred[b] = since.Add(d)
		}
	}
	for _, r := range c.rounds {
		shift(&r.started)
		shift(&r.deadline)
	}
	ms := d.Milliseconds()
	for b, at := range c.changed {
		if at != 0 {
			c.changed[b] = at + ms
		}
	}
	for id, at := range c.gapFetches {
		c.gapFetches[id] = at.Add(d)
	}
	for id, p := range c.parked {
		shift(&p.at)
		shift(&p.fetchAt)
		c.parked[id] = p
	}
	for _, m := range c.hellos {
		shift(&m.downAt)
	}
	if p := c.part; p != nil {
		shift(&p.expiry)
		shift(&p.placeAt)
		shift(&p.nextHandoff)
		shift(&p.nextHello)
		for _, h := range p.inflight {
			shift(&h.deadline)
		}
	}
}

// Tick does whatever is due at now.
func (c *Core) Tick(now time.Time) {
	if !c.flushAt.IsZero() && !now.Before(c.flushAt) {
		c.flush(now)
	}
	if !c.gapDue.IsZero() && !now.Before(c.gapDue) {
		c.fetchGaps(now)
	}
	for _, k := range c.sortedRounds() {
		if r := c.rounds[k]; !now.Before(r.deadline) {
			c.end(now, k, r, "timeout")
			c.log.Debug("anti-entropy round timed out", "with", string(k.peer))
		}
	}
	if !now.Before(c.nextSync) {
		c.nextSync = now.Add(c.jitter(c.cfg.SyncInterval))
		if p, ok := c.syncPeer(); ok {
			c.startRound(now, p, true)
		}
	}
	if !c.lostSyncAt.IsZero() && !now.Before(c.lostSyncAt) {
		c.syncLost(now)
	}
	if c.deferred.Len() > 0 && !now.Before(c.retryAt) {
		retry := c.deferred
		c.deferred = crdt.NewBatch()
		c.persist(now, &task{batch: retry})
	}
	if !now.Before(c.nextGC) {
		c.nextGC = now.Add(c.cfg.GCInterval)
		if !c.gcBusy {
			c.gcBusy = true
			c.ready.Storage = append(c.ready.Storage, StorageOp{Ticket: c.newTicket(&task{gc: true}), Kind: StoreCollect, Now: now, Budget: c.cfg.GCBatch})
		}
	}
	c.partTick(now)
}

func (c *Core) sortedRounds() []roundKey {
	keys := make([]roundKey, 0, len(c.rounds))
	for k := range c.rounds {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.peer != b.peer {
			return a.peer < b.peer
		}
		if a.id != b.id {
			return a.id < b.id
		}
		return !a.initiator && b.initiator
	})
	return keys
}

// randomPeer picks a connected peer with the seeded generator, from the
// peers in id order so that the choice depends on the seed alone.
func (c *Core) randomPeer() (PeerID, bool) {
	if len(c.peers) == 0 {
		return "", false
	}
	ids := c.Peers()
	return ids[c.rng.IntN(len(ids))].ID, true
}

// Peers lists connected peers in id order.
func (c *Core) Peers() []PeerInfo {
	out := make([]PeerInfo, 0, len(c.peers))
	for id, p := range c.peers {
		out = append(out, PeerInfo{ID: id, ClockOffset: p.offset, ClockOffsetKnown: p.haveOffset, LastSync: p.lastSync})
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// PeerUp records a new connection to a mesh member and starts an
// anti-entropy round with it, which is what repairs a partition or a restart.
func (c *Core) PeerUp(now time.Time, p PeerID) {
	if p == c.self {
		return
	}
	if _, ok := c.peers[p]; !ok {
		c.peers[p] = &peerState{}
	}
	c.partPeerUp(now, p)
	c.startRound(now, p, false)
}

// PeerDown forgets a peer and abandons rounds with it.
func (c *Core) PeerDown(now time.Time, p PeerID) {
	delete(c.peers, p)
	c.partPeerDown(now, p)
	for _, k := range c.sortedRounds() {
		if k.peer == p {
			c.end(now, k, c.rounds[k], "peer_lost")
		}
	}
}

// ValidateGossip checks that data is a well-formed delta batch within
// limits. The transport runs it before accepting and forwarding a message.
func ValidateGossip(data []byte, l crdt.Limits) error {
	_, err := DecodeGossip(data, l)
	return err
}

// DecodeGossip is ValidateGossip that returns the batch, for a network
// that validates a message before delivering it and can carry the decoded
// value to Inbound.HandleGossipBatch (p2pnode does, through pubsub's
// ValidatorData), so that gossip is decoded once.
func DecodeGossip(data []byte, l crdt.Limits) (*crdt.Batch, error) {
	return crdt.UnmarshalBatch(data, l)
}

// ReceiveGossip merges a broadcast batch from a peer.
func (c *Core) ReceiveGossip(now time.Time, from PeerID, data []byte) error {
	b, err := crdt.UnmarshalBatch(data, c.cfg.Limits)
	if err != nil {
		c.m.Add("deltas_rejected", 1, "reason", "malformed")
		return fmt.Errorf("node: gossip from %s: %w", from, err)
	}
	c.ReceiveGossipBatch(now, from, b)
	return nil
}

// ReceiveGossipBatch merges a broadcast batch from a peer that the network
// already decoded (DecodeGossip). The Core only reads b and its deltas
// (what it keeps to change later, it copies), so one decoded batch may go
// to several Cores, as the simulator's broadcasts do; the caller must not
// modify b afterwards.
func (c *Core) ReceiveGossipBatch(now time.Time, from PeerID, b *crdt.Batch) {
	c.m.Add("deltas_received", float64(b.Len()))
	c.persist(now, c.batchTask(from, b))
}

// persist hands a batch from a peer (or, with from "", deferred deltas) to
// the store.
func (c *Core) persist(now time.Time, t *task) {
	if c.part != nil {
		// Retries (deferred or parked deltas) too: the placement may
		// have moved their slots away since they arrived.
		if t.batch = c.keepHeld(t.batch); t.batch.Len() == 0 && !t.inRound {
			return // nothing here for this peer to store
		}
	}
	op := StorageOp{Ticket: c.newTicket(t), Kind: StoreApply, Now: now, Batch: t.batch}
	c.ready.Storage = append(c.ready.Storage, op)
}

// applied takes the store's result for a batch from a peer and reports the
// changes.
func (c *Core) applied(now time.Time, t *task, sr StorageResult) {
	from, b := t.from, t.batch
	if sr.Err != nil {
		// The store failed (disk error): keep the deltas for a retry
		// rather than lose them.
		c.log.Error("store apply failed", "err", sr.Err)
		c.defer_(now, b.Sessions())
		if t.inRound {
			c.chunkStored(now, t, sr.Err)
		}
		return
	}
	res := sr.Apply
	var deferred map[string]bool // nil, and read as empty, for most batches
	if len(res.Deferred) > 0 {
		deferred = make(map[string]bool, len(res.Deferred))
		for _, d := range res.Deferred {
			deferred[d.ID] = true
		}
	}
	c.defer_(now, res.Deferred)
	for _, r := range res.Refused {
		reason := "invalid"
		if errors.Is(r.Err, crdt.ErrExpired) {
			reason = "expired"
		}
		c.m.Add("deltas_rejected", 1, "reason", reason)
	}
	for _, d := range b.Sessions() {
		if !deferred[d.ID] {
			// Within the drift bound (Admit checked), so this cannot fail.
			_ = c.clock.Observe(d.MaxTimestamp(), now)
		}
	}
	var retry []*crdt.Session
	var took map[string]bool // a retry of parked deltas: the ones taken
	if t.retry {
		took = make(map[string]bool, len(res.Changes))
	}
	for _, ch := range res.Changes {
		if d := b.Get(ch.ID); d != nil && from != "" {
			c.m.Observe("replication_lag_seconds", float64(now.UnixMilli()-d.MaxMillis())/1000)
		}
		if ch.Destroyed {
			c.touches.forget(ch.ID)
		}
		if ch.Dropped {
			// This peer missed what the writer held before (a lost or
			// late delta): keep the delta's entries for when it has it,
			// and ask for the session if that takes long (park).
			if !t.retry {
				c.m.Add("version_entries_dropped", 1)
				if d := b.Get(ch.ID); d != nil {
					c.park(now, d, from != "")
				}
			}
		} else if t.retry {
			took[ch.ID] = true
		} else if p, ok := c.parked[ch.ID]; ok && !p.retrying {
			// The copy gained something: the parked entries may be
			// due now.
			p.retrying, p.joined = true, false
			c.parked[ch.ID] = p
			retry = append(retry, p.d)
		}
		if !ch.Empty() {
			c.bucketChanged(now, ch.ID)
			c.ready.Changes = append(c.ready.Changes, Change{Change: ch, Remote: true, From: from})
		}
	}
	if t.retry {
		// A parked delta stays parked until a retry takes it: one whose
		// guard failed again merges as no change at all (its fields are
		// here already), so only what was taken tells.
		for _, d := range b.Sessions() {
			p, ok := c.parked[d.ID]
			if !ok {
				continue
			}
			p.retrying = false
			switch {
			case !took[d.ID]:
				c.parked[d.ID] = p
			case p.joined:
				// More was parked meanwhile, under the guard just met.
				p.retrying, p.joined = true, false
				c.parked[d.ID] = p
				retry = append(retry, p.d)
			default:
				delete(c.parked, d.ID)
			}
		}
	}
	if len(retry) > 0 {
		c.persist(now, &task{batch: crdt.NewBatch(retry...), retry: true})
	}
	if t.inRound {
		c.chunkStored(now, t, nil)
	}
}

func (c *Core) defer_(now time.Time, ds []*crdt.Session) {
	for _, d := range ds {
		if c.deferred.Len() >= c.cfg.MaxDeferred && c.deferred.Get(d.ID) == nil {
			c.m.Add("deltas_rejected", 1, "reason", "deferred_overflow")
			continue
		}
		c.deferred.Add(d)
		c.m.Add("deltas_deferred", 1)
	}
	if c.deferred.Len() > 0 && !c.retryAt.After(now) {
		c.retryAt = now.Add(time.Second)
	}
}

// observeOffset records the peer's clock offset and warns, at most once a
// minute, when our clock is off from most peers by more than half the drift
// bound: then it is probably ours that is wrong.
func (c *Core) observeOffset(now time.Time, from PeerID, sentAt int64) {
	p, ok := c.peers[from]
	if !ok {
		return
	}
	p.offset = time.Duration(sentAt-now.UnixMilli()) * time.Millisecond
	p.haveOffset = true
	c.m.Observe("peer_clock_offset_seconds", p.offset.Seconds(), "peer", string(from))
	if (p.offset > c.cfg.MaxDrift/2 || p.offset < -c.cfg.MaxDrift/2) && (p.warnedAt.IsZero() || now.Sub(p.warnedAt) > 10*time.Minute) {
		p.warnedAt = now
		c.log.Warn("peer clock offset beyond half the drift bound; its writes may be deferred here, or ours there",
			"with", string(from), "offset", p.offset, "max_drift", c.cfg.MaxDrift)
	}
	off, known := 0, 0
	for _, q := range c.peers {
		if q.haveOffset {
			known++
			if q.offset > c.cfg.MaxDrift/2 || q.offset < -c.cfg.MaxDrift/2 {
				off++
			}
		}
	}
	if known >= 2 && off*2 > known && now.Sub(c.warnedAt) > time.Minute {
		c.warnedAt = now
		c.log.Warn("local clock is off from most peers; writes from here may be deferred elsewhere",
			"peers_off", off, "peers_known", known, "max_drift", c.cfg.MaxDrift)
	}
}
