package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// sendTimeout bounds one network send, so a dead peer cannot hold up the
// queue behind it for long.
const sendTimeout = 5 * time.Second

// closeLinger is how long Close lets a final broadcast leave.
const closeLinger = 250 * time.Millisecond

// outQueue is the depth of the broadcast queue. A full queue drops the
// batch (counted): gossip is best effort and anti-entropy repairs.
const outQueue = 1024

// directQueueLen is the depth of each peer's direct queue (a variable so
// that a test can make it small and full).
var directQueueLen = 256

// Node is a sessionmesh peer: a store, a clock and a network, driven by a
// Core. All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	store Store
	// ps is store when it is a persist store, whose Get reads take
	// without copying the id (readScratch).
	ps   *persist.Store
	net  Network
	self PeerID
	log  *slog.Logger
	m    Metrics

	mu   sync.Mutex // guards core and armed
	core *Core
	// armed is when timerLoop's timer fires: a step that moves
	// core.Next earlier wakes the loop to set it again.
	armed time.Time

	syncMu      sync.Mutex
	syncWaiters map[syncKey][]chan SyncReport

	watchMu  sync.Mutex
	watchers map[chan Change]struct{}

	// Callers waiting for a session to reach a version (WithVersion).
	waitMu  sync.Mutex
	waiters map[string][]chan struct{}
	waiting atomic.Int64
	// writeLocks serialise the local writes of each session.
	writeLocks sessionLocks
	// remote are reads waiting on holders (partial replication).
	remote remoteReads
	// remoteCache keeps sessions read from their holders.
	remoteCache remoteCache

	outMu     sync.Mutex
	broadcast chan []byte
	direct    map[PeerID]*directQueue

	wake chan struct{}
	// lost: peers deltas were lost to (deltasLost), for timerLoop to
	// hand to the Core.
	lostMu    sync.Mutex
	lost      map[PeerID]bool
	done      chan struct{}
	closed    atomic.Bool // set as done closes: what isClosed reads
	closeOnce sync.Once
	closing   sync.WaitGroup // the timer loop
	senders   sync.WaitGroup // outbound goroutines
	onClose   []func() error
}

// New builds a node over an open store, on the network of cfg.Dial
// (p2pnode's libp2p, a test's, the simulator's). The simulator uses it with its own store;
// Open opens the store too. The node closes store only through closeStore,
// when given.
func New(ctx context.Context, cfg Config, store Store, closeStore func() error) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		store:       store,
		log:         cfg.Logger.With("component", "node"),
		m:           cfg.Metrics,
		watchers:    make(map[chan Change]struct{}),
		waiters:     make(map[string][]chan struct{}),
		writeLocks:  sessionLocks{seed: maphash.MakeSeed()},
		syncWaiters: make(map[syncKey][]chan SyncReport),
		broadcast:   make(chan []byte, outQueue),
		direct:      make(map[PeerID]*directQueue),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if _, ok := store.(Dropper); cfg.Replicas > 0 && !ok {
		return nil, fmt.Errorf("node: config: Replicas needs a store that can drop handed-off sessions (%T cannot)", store)
	}
	n.ps, _ = store.(*persist.Store)
	if closeStore != nil {
		n.onClose = append(n.onClose, closeStore)
	}
	var seed [8]byte
	if _, err := io.ReadFull(cfg.Rand, seed[:]); err != nil {
		return nil, fmt.Errorf("node: seed: %w", err)
	}
	// The core must exist before the network can deliver anything to it.
	n.mu.Lock()
	defer n.mu.Unlock()
	net, err := cfg.Dial(ctx, inbound{n})
	if err != nil {
		return nil, err
	}
	n.net = net
	n.self = net.Self()
	n.core = NewCore(cfg, n.self, store, NodeIDOf(n.self), binary.BigEndian.Uint64(seed[:]), cfg.Clock.Now())
	n.senders.Add(1)
	go n.broadcastLoop()
	n.closing.Add(1)
	go n.timerLoop()
	return n, nil
}

// StoreDir is the store's directory inside Config.DataDir, beside the
// peer's identity key (p2pnode's transport.IdentityFile), so that a key written
// before the first start (sessionmesh keygen) does not stand in its way.
const StoreDir = "store"

// Open starts a peer: a persist store in cfg.DataDir/StoreDir (in memory
// when DataDir is empty) and the network of cfg.Dial (p2pnode.Open dials
// libp2p, whose identity key lives in cfg.DataDir).
func Open(ctx context.Context, cfg Config) (*Node, error) {
	o := persist.DefaultOptions(filepath.Join(cfg.DataDir, StoreDir))
	if cfg.DataDir == "" {
		o = persist.InMemoryOptions()
	}
	if cfg.StoreOptions != nil {
		dir, mem := o.Dir, o.InMemory
		cfg.StoreOptions(&o)
		o.Dir, o.InMemory = dir, mem
	}
	o.Durability = cfg.Durability
	o.EncryptionKey = cfg.EncryptionKey
	o.Limits = cfg.Limits
	o.MaxDrift = cfg.MaxDrift
	o.GCInterval = 0 // the core schedules collection
	o.Logger = cfg.Logger
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := persist.Open(o)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n, err := New(ctx, cfg, st, st.Close)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return n, nil
}

// ID returns this peer's id.
func (n *Node) ID() PeerID { return n.self }

// Store returns the node's store, read-only use (digests, inspection).
func (n *Node) Store() Store { return n.store }

// isClosed reports whether done is closed: one load, which every read
// pays, where a select on done took a channel receive.
func (n *Node) isClosed() bool { return n.closed.Load() }

// step runs fn on the core at the current time and carries out the work it
// hands back.
func (n *Node) step(fn func(c *Core, now time.Time)) {
	n.mu.Lock()
	fn(n.core, n.cfg.Clock.Now())
	r := n.ready()
	n.mu.Unlock()
	n.carry(r, nil)
}

// ownAck is the Ack a local operation's caller waits for: carry hands it
// over instead of dispatching it.
type ownAck struct {
	ticket uint64
	ack    Ack
	got    bool
}

// stepLocal is step for a local operation: fn returns the ticket of the
// write it made (0 for none), and stepLocal returns its Ack, and false
// when there was no write. The Ack
// always comes out of this call's carry: the write's StorageOp is in the
// Ready taken under the same lock as fn, this goroutine runs it and hands
// its result back to the core, whose next Ready holds the Ack. So no
// channel and no shared table of waiting writers is needed.
func (n *Node) stepLocal(fn func(c *Core, now time.Time) uint64) (Ack, bool) {
	var own ownAck
	n.mu.Lock()
	own.ticket = fn(n.core, n.cfg.Clock.Now())
	r := n.ready()
	n.mu.Unlock()
	if own.ticket == 0 {
		n.carry(r, nil)
		return Ack{}, false
	}
	n.carry(r, &own)
	if !own.got {
		// Not expected (see above): report it rather than claim the write.
		own.ack = Ack{Ticket: own.ticket, Err: fmt.Errorf("node: write %d: no acknowledgement came back", own.ticket)}
	}
	return own.ack, true
}

// ready takes the core's Ready and queues its broadcasts; the caller holds
// n.mu. Broadcasts leave in the order the core made them: a change-only
// delta's guard asks for the one its writer sent before, and two callers
// dispatching their Readies after the lock could swap them (the receiver
// would then take the later one's version entries only after a repair).
// Queueing never blocks (a full queue drops, counted).
func (n *Node) ready() Ready {
	r := n.core.Ready()
	for _, b := range r.Broadcasts {
		n.outMu.Lock()
		if !n.isClosed() {
			select {
			case n.broadcast <- b:
			default:
				// Gossip is best effort: anti-entropy repairs.
				n.m.Add("deltas_rejected", 1, "reason", "send_queue_full")
			}
		}
		n.outMu.Unlock()
	}
	if len(r.Broadcasts) > 0 {
		// Queued: the slice serves a later Ready (the data went on).
		n.core.Recycle(Ready{Broadcasts: r.Broadcasts})
	}
	r.Broadcasts = nil
	if len(r.Messages) > 0 {
		r.Messages = n.queueDeltas(r.Messages)
	}
	// Any event can move the core's next deadline earlier (a peer down
	// starts a placement grace, a parked delta's fetch falls due): the
	// timer must not sleep past it.
	if n.core.Next().Before(n.armed) {
		n.kick()
	}
	return r
}

// carry carries out a Ready in its order: storage first, outside the
// core's lock (concurrent callers meet in the store's group commit), then
// sends (broadcasts were queued under the lock), then acknowledgements and
// reports; then it hands the storage
// results back to the core and carries out what that decided, until
// nothing is left.
//
// Each Ready carried out goes back to the core (Core.Recycle), so that the
// next one reuses its slices: the one before Stored under the lock taken
// for it, the last one when the lock is free at once (a writer never waits
// for it: under contention that Ready is left to the collector).
func (n *Node) carry(r Ready, own *ownAck) {
	var one [1]StorageResult // a write's step has one op: no allocation
	for {
		done := r // r's slices as the core made them, for Recycle
		var results []StorageResult
		if len(r.Storage) > 0 {
			results = one[:0]
			if len(r.Storage) > 1 {
				results = make([]StorageResult, 0, len(r.Storage))
			}
			for _, op := range r.Storage {
				results = append(results, op.Run(context.Background(), n.store))
			}
		}
		if own != nil && !own.got {
			for i, a := range r.Acks {
				if a.Ticket == own.ticket {
					own.ack, own.got = a, true
					r.Acks = append(r.Acks[:i:i], r.Acks[i+1:]...)
					break
				}
			}
		}
		n.dispatch(r)
		if len(results) == 0 {
			if !done.Empty() && n.mu.TryLock() {
				n.core.Recycle(done)
				n.mu.Unlock()
			}
			return
		}
		n.mu.Lock()
		now := n.cfg.Clock.Now()
		for _, res := range results {
			n.core.Stored(now, res)
		}
		n.core.Recycle(done)
		r = n.ready()
		n.mu.Unlock()
	}
}

// dispatch carries out a Ready's sends (its broadcasts are queued already,
// by ready) and reports. Its acknowledgements are the local writes' own,
// which their callers took in carry (stepLocal).
func (n *Node) dispatch(r Ready) {
	for _, msg := range r.Messages {
		n.sendDirect(msg)
	}
	n.notify(r.Changes)
	n.remoteCache.merge(r.NotHeld)
	n.reportRounds(r.Rounds)
}

// sendDirect queues a message for one peer. A full queue waits (up to
// sendTimeout): anti-entropy keeps few messages in flight per round, so a
// full queue means a slow link, and dropping would only stall the round.
// What still cannot be queued is counted and lost; the round it belonged
// to then fails by its timeout, never completes.
func (n *Node) sendDirect(msg Message) {
	n.outMu.Lock()
	q := n.directQueueLocked(msg.To)
	n.outMu.Unlock()
	if q == nil {
		return
	}
	select {
	case q.ch <- msg.Data:
		return
	default:
	}
	n.m.Add("send_queue_waits", 1)
	t := time.NewTimer(sendTimeout)
	defer t.Stop()
	select {
	case q.ch <- msg.Data:
	case <-q.gone:
	case <-t.C:
		n.m.Add("deltas_rejected", 1, "reason", "send_queue_full")
	}
}

// queueDeltas queues the messages of msgs that carry deltas (partial
// replication's delivery to holders) and returns the others. It runs
// under n.mu, as broadcasts are queued, so that the deltas to one peer
// leave in the order the core made them; like gossip, a full queue drops
// (counted), and anti-entropy repairs.
func (n *Node) queueDeltas(msgs []Message) []Message {
	rest := msgs[:0]
	for _, m := range msgs {
		if len(m.Data) < 2 || m.Data[1] != kindDeltas {
			rest = append(rest, m)
			continue
		}
		n.outMu.Lock()
		if q := n.directQueueLocked(m.To); q != nil {
			q.queueDelta(m.Data, n.m)
		}
		n.outMu.Unlock()
	}
	return rest
}

// deltaBacklogBytes bounds the deltas waiting for one peer beyond its
// queue: a burst of writes outruns the link for a moment without loss
// (which only anti-entropy between holders would repair, slowly: with R
// holders per region few rounds compare a given slot); a peer that stays
// slower than the writes loses what does not fit.
const deltaBacklogBytes = 32 << 20

// queueDelta queues a delta message, past the channel into the backlog
// when the channel is full; once the backlog holds something, later
// deltas go behind it, so that they keep their order. The caller holds
// n.outMu.
func (q *directQueue) queueDelta(data []byte, m Metrics) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.backlog) == 0 {
		select {
		case q.ch <- data:
			return
		default:
		}
	}
	if q.backlogBytes+len(data) > deltaBacklogBytes {
		m.Add("deltas_rejected", 1, "reason", "send_queue_full")
		return
	}
	q.backlog = append(q.backlog, data)
	q.backlogBytes += len(data)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next returns the next message to send: the channel's first (queued
// before any backlog), else the backlog's; ok false when both are empty.
func (q *directQueue) next() ([]byte, bool) {
	select {
	case data := <-q.ch:
		return data, true
	default:
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.backlog) == 0 {
		return nil, false
	}
	data := q.backlog[0]
	q.backlog[0] = nil
	q.backlog = q.backlog[1:]
	q.backlogBytes -= len(data)
	return data, true
}

// directQueue is the outbound queue of one peer. Its channel is never
// closed (senders may be waiting on it); gone tells the loop to stop.
type directQueue struct {
	ch   chan []byte
	gone chan struct{}
	// Deltas that did not fit in ch (queueDelta), in order, and a wake-up
	// for the loop when it waits on an empty ch.
	mu           sync.Mutex
	backlog      [][]byte
	backlogBytes int
	wake         chan struct{}
}

func (n *Node) directQueueLocked(p PeerID) *directQueue {
	if n.isClosed() {
		return nil
	}
	q, ok := n.direct[p]
	if !ok {
		q = &directQueue{ch: make(chan []byte, directQueueLen), gone: make(chan struct{}), wake: make(chan struct{}, 1)}
		n.direct[p] = q
		n.senders.Add(1)
		go n.directLoop(p, q)
	}
	return q
}

func (n *Node) broadcastLoop() {
	defer n.senders.Done()
	for data := range n.broadcast {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		if err := n.net.Broadcast(ctx, data); err != nil {
			n.log.Debug("broadcast failed", "err", err)
		}
		cancel()
	}
}

func (n *Node) directLoop(p PeerID, q *directQueue) {
	defer n.senders.Done()
	for {
		if data, ok := q.next(); ok {
			n.sendOne(p, data)
			continue
		}
		select {
		case data := <-q.ch:
			n.sendOne(p, data)
		case <-q.wake:
		case <-q.gone:
			// Drain what is queued: Close waits for it, PeerDown's sends
			// fail fast.
			for {
				data, ok := q.next()
				if !ok {
					return
				}
				n.sendOne(p, data)
			}
		}
	}
}

func (n *Node) sendOne(p PeerID, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	if err := n.net.Send(ctx, p, data); err != nil {
		n.log.Debug("send failed", "to", string(p), "err", err)
		n.deltasLost(p)
	}
}

// deltasLost has anti-entropy start soon with p, which lost what was sent
// to it (Core.DeltasLost). It only notes p for timerLoop: its callers are
// p's own send loop and the transport's, and stepping the Core here would
// dispatch its messages from them, one of which may be for p, whose full
// queue only this send loop drains (it waited sendTimeout and dropped the
// message, an anti-entropy round's, and the round never repaired).
func (n *Node) deltasLost(p PeerID) {
	if n.isClosed() {
		return
	}
	n.lostMu.Lock()
	if n.lost == nil {
		n.lost = map[PeerID]bool{}
	}
	n.lost[p] = true
	n.lostMu.Unlock()
	n.kick()
}

// takeLost hands the peers noted by deltasLost to the Core.
func (n *Node) takeLost() {
	n.lostMu.Lock()
	lost := n.lost
	n.lost = nil
	n.lostMu.Unlock()
	if len(lost) == 0 {
		return
	}
	n.step(func(c *Core, now time.Time) {
		for _, p := range slices.Sorted(maps.Keys(lost)) {
			c.DeltasLost(now, p)
		}
	})
}

func (n *Node) timerLoop() {
	defer n.closing.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		n.mu.Lock()
		next := n.core.Next()
		n.armed = next
		n.mu.Unlock()
		t.Reset(max(0, next.Sub(n.cfg.Clock.Now())))
		select {
		case <-n.done:
			return
		case <-n.wake:
			n.takeLost()
			continue
		case <-t.C:
		}
		n.step(func(c *Core, now time.Time) { c.Tick(now) })
	}
}

func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// inbound is how the network reaches the node: the node hands it to its
// Dialer only, so that nothing else (an embedder) can inject gossip that no
// validator saw, or announce peers.
type inbound struct{ n *Node }

func (in inbound) HandleGossip(from PeerID, data []byte) { in.n.handleGossip(from, data) }
func (in inbound) HandleDirect(from PeerID, data []byte) { in.n.handleDirect(from, data) }
func (in inbound) PeerUp(id PeerID)                      { in.n.peerUp(id) }
func (in inbound) PeerDown(id PeerID)                    { in.n.peerDown(id) }

// GossipLost implements LossInbound.
func (in inbound) GossipLost(p PeerID) { in.n.deltasLost(p) }

// HandleGossipBatch implements BatchInbound.
func (in inbound) HandleGossipBatch(from PeerID, b *crdt.Batch) {
	if in.n.isClosed() {
		return
	}
	in.n.step(func(c *Core, now time.Time) { c.ReceiveGossipBatch(now, from, b) })
}

func (n *Node) handleGossip(from PeerID, data []byte) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) {
		if err := c.ReceiveGossip(now, from, data); err != nil {
			n.log.Debug("gossip rejected", "from", string(from), "err", err)
		}
	})
}

func (n *Node) handleDirect(from PeerID, data []byte) {
	if n.isClosed() {
		return
	}
	if n.remoteAnswer(data) {
		return
	}
	if id, ok, err := FetchRequest(data); ok {
		// Answered here: the Core does not read the store.
		if err != nil {
			n.m.Add("deltas_rejected", 1, "reason", "bad_sync_message")
			return
		}
		n.answerFetch(from, id)
		return
	}
	n.step(func(c *Core, now time.Time) {
		if err := c.ReceiveDirect(now, from, data); err != nil {
			n.m.Add("deltas_rejected", 1, "reason", "bad_sync_message")
			n.log.Debug("sync message rejected", "from", string(from), "err", err)
		}
	})
	n.kick()
}

func (n *Node) peerUp(id PeerID) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) { c.PeerUp(now, id) })
	n.kick()
}

func (n *Node) peerDown(id PeerID) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) { c.PeerDown(now, id) })
	n.outMu.Lock()
	if q, ok := n.direct[id]; ok {
		close(q.gone)
		delete(n.direct, id)
	}
	n.outMu.Unlock()
	n.kick()
}

// Peers lists the connected peers.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.core.Peers()
}

// Close flushes pending deltas to the network, stops the node, and closes
// the network and the store. ctx bounds the wait for queued messages.
func (n *Node) Close(ctx context.Context) error {
	err := ErrClosed
	n.closeOnce.Do(func() {
		flushed := false
		n.step(func(c *Core, _ time.Time) {
			flushed = c.pending.Len() > 0
			c.Flush()
		})
		n.outMu.Lock()
		n.closed.Store(true)
		close(n.done)
		close(n.broadcast)
		for id, q := range n.direct {
			close(q.gone)
			delete(n.direct, id)
		}
		n.outMu.Unlock()
		n.closing.Wait()
		drained := make(chan struct{})
		go func() { n.senders.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-ctx.Done():
			n.log.Warn("closing before every queued message was sent", "err", ctx.Err())
		}
		if flushed {
			// gossipsub sends from its own loop after Publish returns and
			// offers no flush: give it a moment before the host goes.
			// Whatever still misses a peer is durable here and reaches it
			// by anti-entropy when this node is back.
			select {
			case <-time.After(closeLinger):
			case <-ctx.Done():
			}
		}
		n.watchMu.Lock()
		for ch := range n.watchers {
			close(ch)
			delete(n.watchers, ch)
		}
		n.watchMu.Unlock()
		errs := []error{n.net.Close()}
		for _, f := range n.onClose {
			errs = append(errs, f())
		}
		err = errors.Join(errs...)
		if err != nil {
			err = fmt.Errorf("node: close: %w", err)
		}
	})
	return err
}
