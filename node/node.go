package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"path/filepath"
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

// outQueue is the depth of each outbound queue. A full queue drops the
// message (counted): gossip is best effort and anti-entropy repairs.
const outQueue = 1024

// Node is a sessionmesh peer: a store, a clock and a network, driven by a
// Core. All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	store Store
	net   Network
	self  PeerID
	log   *slog.Logger
	m     Metrics

	mu   sync.Mutex // guards core
	core *Core

	touchMu    sync.Mutex
	touches    map[string]int64 // local-only last access, Unix ms
	touchCount atomic.Int64     // len(touches), read without touchMu

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

	outMu     sync.Mutex
	broadcast chan []byte
	direct    map[PeerID]chan []byte

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closing   sync.WaitGroup // the timer loop
	senders   sync.WaitGroup // outbound goroutines
	onClose   []func() error
}

// New builds a node over an open store, on the network of cfg.Dial (libp2p
// with cfg.Transport when nil). The simulator uses it with its own store;
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
		touches:     make(map[string]int64),
		watchers:    make(map[chan Change]struct{}),
		waiters:     make(map[string][]chan struct{}),
		writeLocks:  sessionLocks{seed: maphash.MakeSeed()},
		syncWaiters: make(map[syncKey][]chan SyncReport),
		broadcast:   make(chan []byte, outQueue),
		direct:      make(map[PeerID]chan []byte),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
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
	dial := cfg.Dial
	if dial == nil {
		dial = libp2pDialer(cfg)
	}
	net, err := dial(ctx, n)
	if err != nil {
		return nil, err
	}
	n.net = net
	n.self = net.Self()
	sum := sha256.Sum256([]byte(n.self))
	n.core = NewCore(cfg, n.self, store, crdt.NodeID(binary.BigEndian.Uint64(sum[:8])), binary.BigEndian.Uint64(seed[:]), cfg.Clock.Now())
	n.senders.Add(1)
	go n.broadcastLoop()
	n.closing.Add(1)
	go n.timerLoop()
	return n, nil
}

// StoreDir is the store's directory inside Config.DataDir, beside the
// peer's identity key (transport.IdentityFile), so that a key written
// before the first start (sessionmesh keygen) does not stand in its way.
const StoreDir = "store"

// Open starts a peer: a persist store in cfg.DataDir/StoreDir (in memory
// when DataDir is empty) and the libp2p network of cfg.Transport (or
// cfg.Dial's), whose identity key lives in cfg.DataDir.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	o := persist.DefaultOptions(filepath.Join(cfg.DataDir, StoreDir))
	if cfg.DataDir == "" {
		o = persist.InMemoryOptions()
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

func (n *Node) isClosed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// step runs fn on the core at the current time and carries out the work it
// hands back.
func (n *Node) step(fn func(c *Core, now time.Time)) {
	n.mu.Lock()
	fn(n.core, n.cfg.Clock.Now())
	r := n.core.Ready()
	n.mu.Unlock()
	n.dispatch(r)
}

func (n *Node) dispatch(r Ready) {
	if len(r.Broadcasts)+len(r.Messages) > 0 {
		// Queues are closed under outMu, so sends hold it too.
		n.outMu.Lock()
		for _, b := range r.Broadcasts {
			if n.isClosed() {
				break
			}
			select {
			case n.broadcast <- b:
			default:
				n.m.Add("deltas_rejected", 1, "reason", "send_queue_full")
			}
		}
		for _, msg := range r.Messages {
			q := n.directQueueLocked(msg.To)
			if q == nil {
				break
			}
			select {
			case q <- msg.Data:
			default:
				n.m.Add("sync_rounds", 1, "result", "send_queue_full")
			}
		}
		n.outMu.Unlock()
	}
	n.notify(r.Changes)
	n.reportRounds(r.Rounds)
}

func (n *Node) directQueueLocked(p PeerID) chan []byte {
	if n.isClosed() {
		return nil
	}
	q, ok := n.direct[p]
	if !ok {
		q = make(chan []byte, outQueue)
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

func (n *Node) directLoop(p PeerID, q chan []byte) {
	defer n.senders.Done()
	for data := range q {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		if err := n.net.Send(ctx, p, data); err != nil {
			n.log.Debug("send failed", "to", string(p), "err", err)
		}
		cancel()
	}
}

func (n *Node) timerLoop() {
	defer n.closing.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		n.mu.Lock()
		next := n.core.Next()
		n.mu.Unlock()
		t.Reset(max(0, next.Sub(n.cfg.Clock.Now())))
		select {
		case <-n.done:
			return
		case <-n.wake:
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

// HandleGossip implements Inbound.
func (n *Node) HandleGossip(from PeerID, data []byte) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) {
		if err := c.ReceiveGossip(now, from, data); err != nil {
			n.log.Debug("gossip rejected", "from", string(from), "err", err)
		}
	})
}

// HandleDirect implements Inbound.
func (n *Node) HandleDirect(from PeerID, data []byte) {
	if n.isClosed() {
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

// PeerUp implements Inbound.
func (n *Node) PeerUp(id PeerID) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) { c.PeerUp(now, id) })
	n.kick()
}

// PeerDown implements Inbound.
func (n *Node) PeerDown(id PeerID) {
	if n.isClosed() {
		return
	}
	n.step(func(c *Core, now time.Time) { c.PeerDown(now, id) })
	n.outMu.Lock()
	if q, ok := n.direct[id]; ok {
		close(q)
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
		close(n.done)
		close(n.broadcast)
		for id, q := range n.direct {
			close(q)
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
