package transport

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Gossipsub tuning. The defaults drop messages under load (32-slot
// queues); a mesh of tens of peers can afford more.
const (
	peerOutboundQueue = 256
	validateQueue     = 1024
	subscriptionQueue = 1024
	// envelopeSlack is added to MaxMessageBytes for gossipsub's own RPC
	// size limit, which covers the signed envelope (author, seqno, topic,
	// signature) around the payload.
	envelopeSlack = 16 << 10
)

// startGossip creates the gossipsub router, joins the mesh topic and
// starts delivering messages.
func (t *Transport) startGossip() error {
	topic := t.cfg.Topic()
	params := pubsub.DefaultGossipSubParams()
	// The message cache keeps every message published or forwarded for
	// HistoryLength heartbeats (a second each), to answer the IWANTs of
	// peers outside the topic's mesh that saw it announced in the last
	// HistoryGossip heartbeats. A mesh of a few peers has every peer in
	// the topic's mesh (gossipsub's D is 6) and floods its publications,
	// so the cache rarely serves anything, while it holds the last
	// HistoryLength seconds of writes: gossipsub's default of 5 was a
	// fifth of the memory of a peer loading sessions at full speed.
	// Announcing the last heartbeat's messages and keeping them one more
	// still lets a larger mesh's outer peers fetch what they missed;
	// anti-entropy repairs the rest.
	params.HistoryLength = 2
	params.HistoryGossip = 1
	ps, err := pubsub.NewGossipSub(t.ctx, t.h,
		pubsub.WithGossipSubParams(params),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(t.cfg.MaxMessageBytes+envelopeSlack),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithValidateWorkers(1), // see RegisterTopicValidator below
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			pubsub.NewAllowlistSubscriptionFilter(topic), 16)),
		pubsub.WithPeerFilter(func(p peer.ID, _ string) bool { return t.gater.permitted(p) }),
		pubsub.WithFloodPublish(true),
		pubsub.WithRawTracer(t.tracer),
		pubsub.WithLogger(t.log.With("component", "pubsub")),
	)
	if err != nil {
		return fmt.Errorf("transport: gossipsub: %w", err)
	}
	// Inline, on one validation worker: gossipsub otherwise validates each
	// message on a goroutine of its own (async validators) over NumCPU
	// workers, and hands them on in the order they finish, so two deltas
	// of one writer sent back to back could arrive swapped. A change-only
	// delta's guard asks for the one before it, so a swapped pair parks
	// the later one and merges it again (8% of the deltas of a three-peer
	// mesh at 10k writes/s, each a retry and a copy of the parked delta);
	// inline, messages keep the order their streams brought them in, and
	// no goroutine is started per message.
	if err := ps.RegisterTopicValidator(topic, t.validateGossip, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("transport: register validator: %w", err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		return fmt.Errorf("transport: join %s: %w", topic, err)
	}
	sub, err := tp.Subscribe(pubsub.WithBufferSize(subscriptionQueue))
	if err != nil {
		tp.Close()
		return fmt.Errorf("transport: subscribe %s: %w", topic, err)
	}
	t.ps, t.topic, t.sub = ps, tp, sub
	t.wg.Add(1)
	go t.gossipLoop()
	if lh, ok := t.handler.(GossipLossHandler); ok {
		t.wg.Add(1)
		go t.lossLoop(lh)
	}
	return nil
}

// lossLoop reports the peers that gossip was lost with, off gossipsub's
// event loop (the tracer must not block).
func (t *Transport) lossLoop(lh GossipLossHandler) {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.tracer.lost.wake:
		}
		for _, p := range t.tracer.lost.take() {
			lh.GossipLost(p)
		}
	}
}

// lossSet collects the peers gossip was lost with until lossLoop takes
// them.
type lossSet struct {
	mu    sync.Mutex
	peers map[peer.ID]struct{}
	wake  chan struct{}
}

func (l *lossSet) add(p peer.ID) {
	l.mu.Lock()
	_, had := l.peers[p]
	if !had {
		l.peers[p] = struct{}{}
	}
	l.mu.Unlock()
	if !had {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *lossSet) take() []peer.ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]peer.ID, 0, len(l.peers))
	for p := range l.peers {
		out = append(out, p)
	}
	clear(l.peers)
	slices.Sort(out)
	return out
}

// validateGossip runs on every message of the topic, ours included, before
// gossipsub accepts and forwards it.
func (t *Transport) validateGossip(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.Data) > t.cfg.MaxMessageBytes {
		return t.rejectGossip(pubsub.ValidationReject, RejectTooLarge, msg, from, nil)
	}
	if msg.Local || from == t.h.ID() {
		// Our own publication (pubsub validates it with ourselves as the
		// sender; msg.Local only marks local-only ones). We built it, and
		// gossipLoop skips it: decoding it would cost a decode per write
		// and keep the decoded batch in pubsub's message cache for its
		// history window (a third of the heap of a node loading 100k
		// sessions).
		return pubsub.ValidationAccept
	}
	author := msg.GetFrom()
	if !t.gater.member(author) || !t.gater.member(from) {
		return t.rejectGossip(pubsub.ValidationReject, RejectNotMember, msg, from, nil)
	}
	if t.gater.isBlocked(author) || t.gater.isBlocked(from) {
		// Ignore rather than reject: a member forwarding it did no wrong.
		return t.rejectGossip(pubsub.ValidationIgnore, RejectBlocked, msg, from, nil)
	}
	if v := t.cfg.ValidateGossip; v != nil {
		if err := v(author, msg.Data); err != nil {
			return t.rejectGossip(pubsub.ValidationReject, RejectInvalid, msg, from, err)
		}
	}
	if d := t.cfg.DecodeGossip; d != nil {
		v, err := d(author, msg.Data)
		if err != nil {
			return t.rejectGossip(pubsub.ValidationReject, RejectInvalid, msg, from, err)
		}
		msg.ValidatorData = v
	}
	return pubsub.ValidationAccept
}

func (t *Transport) rejectGossip(res pubsub.ValidationResult, reason string, msg *pubsub.Message, from peer.ID, err error) pubsub.ValidationResult {
	t.stats.reject(reason)
	args := []any{"reason", reason, "author", msg.GetFrom(), "from", from, "bytes", len(msg.Data)}
	if err != nil {
		args = append(args, "err", err)
	}
	t.rejectLog.Warn("transport: gossip message rejected", args...)
	return res
}

// gossipLoop hands validated messages from other hosts to the handler.
func (t *Transport) gossipLoop() {
	defer t.wg.Done()
	self := t.h.ID()
	for {
		msg, err := t.sub.Next(t.ctx)
		if err != nil {
			return // closed
		}
		if msg.Local || msg.GetFrom() == self {
			continue
		}
		t.stats.gossipReceived.Add(1)
		t.stats.gossipBytesIn.Add(uint64(len(msg.Data)))
		if dh, ok := t.handler.(DecodedGossipHandler); ok && msg.ValidatorData != nil {
			dh.HandleDecodedGossip(msg.GetFrom(), msg.Data, msg.ValidatorData)
			continue
		}
		t.handler.HandleGossip(msg.GetFrom(), msg.Data)
	}
}

// Broadcast publishes data on the mesh topic. Delivery is best effort:
// Broadcast returns once the message is queued for the peers currently
// known to be on the topic, which may be none (see GossipPeers).
func (t *Transport) Broadcast(ctx context.Context, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if len(data) > t.cfg.MaxMessageBytes {
		return fmt.Errorf("transport: broadcast %d bytes (max %d): %w", len(data), t.cfg.MaxMessageBytes, ErrTooLarge)
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		if t.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("transport: broadcast: %w", err)
	}
	t.stats.gossipPublished.Add(1)
	t.stats.gossipBytesOut.Add(uint64(len(data)))
	return nil
}

// GossipPeers returns the connected peers that gossipsub knows to be
// subscribed to the mesh topic, sorted: a Broadcast now reaches them
// directly. A peer shows up here shortly after PeerUp (once the two hosts
// have exchanged subscriptions) and the relay mesh is formed at the next
// gossipsub heartbeat (every second); MeshPeers lists it.
func (t *Transport) GossipPeers() []peer.ID {
	if t.closed.Load() {
		return nil
	}
	ids := t.topic.ListPeers()
	slices.Sort(ids)
	return ids
}

// MeshPeers returns the peers in this host's gossipsub mesh for the topic,
// sorted: the peers it forwards others' messages to.
func (t *Transport) MeshPeers() []peer.ID {
	return t.tracer.meshPeers()
}

// gossipTracer counts what gossipsub drops and tracks this host's mesh.
// Its methods run synchronously inside gossipsub and must not block.
type gossipTracer struct {
	stats *counters
	lost  lossSet

	mu   sync.Mutex
	mesh map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*gossipTracer)(nil)

func newGossipTracer(stats *counters) *gossipTracer {
	return &gossipTracer{stats: stats, mesh: make(map[peer.ID]struct{}),
		lost: lossSet{peers: make(map[peer.ID]struct{}), wake: make(chan struct{}, 1)}}
}

func (g *gossipTracer) meshPeers() []peer.ID {
	g.mu.Lock()
	ids := make([]peer.ID, 0, len(g.mesh))
	for id := range g.mesh {
		ids = append(ids, id)
	}
	g.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// RejectMessage counts gossipsub's rejections; those of a message it
// dropped unvalidated are losses (lost.add).
func (g *gossipTracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		// Our validator's decisions, already counted under our reasons.
		return
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		// Dropped before validation (one inline worker validates everyone's
		// gossip): lost like a message dropped on its way out. The peer that
		// sent it is reported, not its author: the sender is who this stream
		// is authenticated as, and it validated the message and holds it, so
		// a round with it repairs the loss.
		if msg != nil && msg.ReceivedFrom != "" {
			g.lost.add(msg.ReceivedFrom)
		}
	}
	g.stats.reject("pubsub: " + reason)
}

// DropRPC counts an RPC gossipsub's queue to p had no room for; one that
// carried messages (not only control) is reported to the handler.
func (g *gossipTracer) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	g.stats.gossipDropped.Add(1)
	if len(rpc.GetPublish()) > 0 {
		g.lost.add(p)
	}
}

// UndeliverableMessage counts a message this host validated and could not
// deliver (its subscription queue was full); its author is reported to
// the handler, which repairs with it.
func (g *gossipTracer) UndeliverableMessage(msg *pubsub.Message) {
	g.stats.gossipUndeliverable.Add(1)
	if from := msg.GetFrom(); from != "" {
		g.lost.add(from)
	}
}

func (g *gossipTracer) Graft(p peer.ID, _ string) {
	g.mu.Lock()
	g.mesh[p] = struct{}{}
	g.mu.Unlock()
}

func (g *gossipTracer) Prune(p peer.ID, _ string) {
	g.mu.Lock()
	delete(g.mesh, p)
	g.mu.Unlock()
}

// OnClosedOutboundStream is gossipsub's "peer gone": it drops the peer from
// every mesh without a Prune.
func (g *gossipTracer) OnClosedOutboundStream(p peer.ID) {
	g.mu.Lock()
	delete(g.mesh, p)
	g.mu.Unlock()
}

func (g *gossipTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (g *gossipTracer) Join(string)                                          {}
func (g *gossipTracer) Leave(string)                                         {}
func (g *gossipTracer) ValidateMessage(*pubsub.Message)                      {}
func (g *gossipTracer) DeliverMessage(*pubsub.Message)                       {}
func (g *gossipTracer) DuplicateMessage(*pubsub.Message)                     {}
func (g *gossipTracer) ThrottlePeer(peer.ID)                                 {}
func (g *gossipTracer) RecvRPC(*pubsub.RPC)                                  {}
func (g *gossipTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (g *gossipTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
