package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/multiformats/go-multiaddr"
)

// Connection manager watermarks: trimming starts above connHigh and stops
// at connLow; members (AllowedPeers) and bootstrap peers are protected.
const (
	connLow     = 32
	connHigh    = 96
	connGrace   = time.Minute
	protectTag  = "sessionmesh"
	userAgent   = "sessionmesh"
	rejectLogIv = time.Second
	memberLogIv = 10 * time.Second // per member and event
	refuseLogIv = 10 * time.Second // per remote and reason
)

// Handler receives what the transport delivers. Its methods may be called
// from several goroutines at once: HandleGossip from the gossip goroutine,
// HandleDirect from one goroutine per inbound stream, and PeerUp/PeerDown
// from the event goroutine, which calls them in the order the connections
// changed. They should return quickly; a slow HandleGossip makes gossipsub
// drop messages (Stats.GossipUndeliverable). They must not call Close.
// Nothing orders messages against peer events: a message from a peer may
// be handled before or after its PeerUp.
type Handler interface {
	// HandleGossip receives a validated gossip message from another host;
	// from is its author. data must not be modified.
	HandleGossip(from peer.ID, data []byte)
	// HandleDirect receives a frame sent with Send. data is owned by the
	// handler.
	HandleDirect(from peer.ID, data []byte)
	// PeerUp reports the first open connection to a permitted peer.
	PeerUp(id peer.ID)
	// PeerDown reports that the last connection to the peer has closed.
	PeerDown(id peer.ID)
}

// DecodedGossipHandler is a Handler that takes gossip with what
// Config.DecodeGossip made of it, instead of HandleGossip.
type DecodedGossipHandler interface {
	Handler
	HandleDecodedGossip(from peer.ID, data []byte, decoded any)
}

// GossipLossHandler is a Handler that hears which peers gossip was lost
// with, so that it can repair soon what went missing: a peer that missed a
// message because gossipsub's queue to it was full (gossipsub drops rather
// than wait), the author of a message this host validated but could not
// deliver (the subscription's queue was full), and the peer that sent a
// message dropped before validation (the validation queue was full).
// GossipLost is called
// from a goroutine of the transport's own, at most once per peer for a
// burst of losses; it may block briefly.
type GossipLossHandler interface {
	Handler
	GossipLost(p peer.ID)
}

// Transport is a libp2p host taking part in one mesh: it gossips on the
// mesh topic, exchanges direct frames, and keeps its bootstrap peers
// connected. Its methods are safe for concurrent use.
type Transport struct {
	cfg     *resolved
	log     *slog.Logger
	handler Handler

	h      host.Host
	cm     *connmgr.BasicConnMgr
	gater  *gater
	ps     *pubsub.PubSub
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	tracer *gossipTracer
	mdns   mdns.Service

	tracker *connTracker
	events  *eventQueue
	mem     membership
	started time.Time

	saveSignal chan struct{} // capacity 1: the member list changed
	saveMu     sync.Mutex    // one save at a time
	pushSignal chan struct{} // capacity 1: records to pass on

	outMu sync.Mutex
	out   map[peer.ID]*outStream

	stats     counters
	rejectLog rateLimitedLog
	saveLog   rateLimitedLog
	memberLog *keyedLog // member joined/lost/back lines, per member
	refuseLog *keyedLog // refusals and ignored records, per source

	// ctx lives until Close. wg counts the goroutines Close waits for;
	// lifeMu orders their registration (enter) against Close.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	lifeMu    sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New starts a transport: it loads or creates the identity, starts the
// libp2p host on cfg.ListenAddrs, joins the mesh topic and starts dialling
// the bootstrap peers in the background (it does not wait for them:
// Handler.PeerUp reports each connection). ctx bounds the start only; the
// transport runs until Close.
func New(ctx context.Context, cfg Config, h Handler) (*Transport, error) {
	if h == nil {
		return nil, errors.New("transport: nil Handler")
	}
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transport: start: %w", err)
	}
	log := r.Logger
	key, err := loadIdentity(r.DataDir, log)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("transport: peer id: %w", err)
	}

	t := &Transport{
		cfg:       r,
		log:       log,
		handler:   h,
		tracker:   newConnTracker(),
		events:    newEventQueue(),
		out:       make(map[peer.ID]*outStream),
		rejectLog: rateLimitedLog{log: log, interval: rejectLogIv},
		saveLog:   rateLimitedLog{log: log, interval: time.Minute},
		memberLog: newKeyedLog(log, memberLogIv),
		refuseLog: newKeyedLog(log, refuseLogIv),
		started:   time.Now(),
		mem: membership{
			members:   make(map[peer.ID]*member),
			forgotten: make(map[peer.ID]tombstone),
		},
		saveSignal: make(chan struct{}, 1),
		pushSignal: make(chan struct{}, 1),
	}
	t.gater = newGater(self, r.allowed, &t.stats, t.refuseLog)
	t.tracer = newGossipTracer(&t.stats)
	t.ctx, t.cancel = context.WithCancel(context.Background())

	saved := t.readMembers()
	t.loadForgotten(saved)
	if err := t.startHost(key); err != nil {
		t.cancel()
		return nil, err
	}
	if err := t.startGossip(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.listen(); err != nil {
		t.Close()
		return nil, err
	}
	if r.MDNS {
		t.mdns = mdns.NewMdnsService(t.h, mdnsServiceName(r.Mesh), mdnsNotifee{t})
		if err := t.mdns.Start(); err != nil {
			t.Close()
			return nil, fmt.Errorf("transport: mDNS: %w", err)
		}
	}

	sub, err := t.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("transport: subscribe to identify: %w", err)
	}
	t.wg.Add(5)
	go t.eventLoop()
	go t.sweepLoop()
	go t.identifyLoop(sub)
	go t.pushLoop()
	go t.saveLoop()
	t.loadMembers(saved)
	for _, ai := range r.bootstrap {
		if m, _ := t.learn(ai.ID, ai.Addrs, "bootstrap"); m != nil {
			t.mem.mu.Lock()
			m.boot = true
			t.mem.mu.Unlock()
		}
	}
	if len(r.dnsaddrs) > 0 {
		t.wg.Add(1)
		go t.dnsLoop()
	}

	if err := ctx.Err(); err != nil {
		t.Close()
		return nil, fmt.Errorf("transport: start: %w", err)
	}
	log.Info("transport: started", "id", self, "addrs", t.Addrs(), "mesh", r.Mesh,
		"private", r.PSK != nil, "allowlist", len(r.allowed), "bootstrap", len(r.bootstrap),
		"members", len(t.Members()))
	return t, nil
}

// ID returns this host's peer id.
func (t *Transport) ID() peer.ID { return t.h.ID() }

// Addrs returns the addresses this host can be dialled at, each ending in
// /p2p/<id>, ready for another host's Config.Bootstrap or Connect.
func (t *Transport) Addrs() []multiaddr.Multiaddr {
	addrs := t.h.Addrs()
	if len(addrs) == 0 {
		addrs, _ = t.h.Network().InterfaceListenAddresses()
	}
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: t.h.ID(), Addrs: addrs})
	if err != nil {
		return nil
	}
	return full
}

// Peers returns the permitted peers with an open connection, sorted.
func (t *Transport) Peers() []peer.ID {
	if t.closed.Load() {
		return nil
	}
	return t.tracker.up()
}

// Connect dials the peer at addr, which must end in /p2p/<id>, and returns
// once a connection is open. The peer becomes a member: it is redialled
// whenever it is not connected, until forgotten.
func (t *Transport) Connect(ctx context.Context, addr multiaddr.Multiaddr) error {
	if t.closed.Load() {
		return ErrClosed
	}
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return fmt.Errorf("transport: connect %s: %w", addr, err)
	}
	switch {
	case ai.ID == t.h.ID():
		return fmt.Errorf("transport: connect %s: %w", addr, ErrSelf)
	case !t.gater.member(ai.ID):
		return fmt.Errorf("transport: connect %s: %w", ai.ID, ErrNotMember)
	case t.gater.isBlocked(ai.ID):
		return fmt.Errorf("transport: connect %s: %w", ai.ID, ErrBlocked)
	}
	t.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.RecentlyConnectedAddrTTL)
	if err := t.dial(ctx, *ai); err != nil {
		if t.closed.Load() {
			return ErrClosed
		}
		return err
	}
	return nil
}

// Block refuses every new connection to or from id and closes the open
// ones; gossip authored or forwarded by id is ignored and Send to it fails
// with ErrBlocked. It is local to this host: id learns of it only by
// losing the connection. It lasts until Unblock (or Close).
func (t *Transport) Block(id peer.ID) {
	if t.closed.Load() || id == t.h.ID() {
		return
	}
	if t.gater.block(id) {
		t.log.Info("transport: blocked peer", "peer", id)
	}
	// Connections that passed the gater before the block are closed here;
	// one that races past this is closed by the Connected notification.
	if err := t.h.Network().ClosePeer(id); err != nil {
		t.log.Debug("transport: close blocked peer", "peer", id, "err", err)
	}
}

// Unblock lifts Block. A member is redialled at once (and then every
// RedialInterval); others may connect again.
func (t *Transport) Unblock(id peer.ID) {
	if t.closed.Load() || !t.gater.unblock(id) {
		return
	}
	t.log.Info("transport: unblocked peer", "peer", id)
	t.mem.mu.Lock()
	m := t.mem.members[id]
	if m != nil {
		m.reset, m.quickDrops = true, 0
	}
	t.mem.mu.Unlock()
	if m != nil {
		m.wakeUp()
	}
}

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	s := t.stats.snapshot()
	s.ConnectionsRefused = t.gater.refused.Load()
	t.mem.mu.Lock()
	s.MembersKnown = len(t.mem.members)
	for _, m := range t.mem.members {
		if m.connected {
			s.MembersConnected++
		}
	}
	t.mem.mu.Unlock()
	return s
}

// Close stops the transport: it leaves the mesh, closes all connections
// and waits for its goroutines, so no Handler method runs after it
// returns (PeerDown is not called for the connections it closes). It must
// not be called from a Handler method. Later calls return nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.lifeMu.Lock()
		t.closed.Store(true)
		t.lifeMu.Unlock()
		t.cancel() // stops gossipsub and the transport's loops
		if t.mdns != nil {
			_ = t.mdns.Close()
		}
		t.closeOutbound()
		t.saveMembers()
		if err := t.h.Close(); err != nil {
			t.closeErr = fmt.Errorf("transport: close host: %w", err)
		}
		t.wg.Wait()
		t.log.Info("transport: closed", "id", t.h.ID())
	})
	return t.closeErr
}

// enter registers a goroutine that Close must wait for; it reports false
// once Close has started.
func (t *Transport) enter() bool {
	t.lifeMu.RLock()
	defer t.lifeMu.RUnlock()
	if t.closed.Load() {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *Transport) leave() { t.wg.Done() }

// spawn runs f in a goroutine that Close waits for, unless closing.
func (t *Transport) spawn(f func()) {
	if !t.enter() {
		return
	}
	go func() {
		defer t.leave()
		f()
	}()
}
