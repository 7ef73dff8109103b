package transport

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerEvent is a PeerUp (up) or PeerDown (!up) waiting for the handler.
type peerEvent struct {
	id peer.ID
	up bool
}

// eventQueue is an unbounded FIFO of peer events, drained by one goroutine
// so that the handler sees them in the order the connections changed and
// libp2p's notification goroutines never wait for the handler.
type eventQueue struct {
	mu     sync.Mutex
	items  []peerEvent
	signal chan struct{} // capacity 1: "items is not empty"
}

func newEventQueue() *eventQueue {
	return &eventQueue{signal: make(chan struct{}, 1)}
}

func (q *eventQueue) push(e peerEvent) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) take() []peerEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// eventLoop hands queued peer events to the handler until Close.
func (t *Transport) eventLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.events.signal:
		}
		for _, e := range t.events.take() {
			if t.ctx.Err() != nil {
				return
			}
			if e.up {
				t.handler.PeerUp(e.id)
			} else {
				t.handler.PeerDown(e.id)
			}
		}
	}
}

// connTracker turns libp2p's per-connection notifications into per-peer
// up/down events: a peer is up from its first open connection to the close
// of its last one. libp2p guarantees Disconnected never runs before
// Connected has finished for the same connection.
type connTracker struct {
	mu    sync.Mutex
	conns map[peer.ID]map[network.Conn]struct{}
	seen  map[peer.ID]struct{} // peers that have been up at least once
}

func newConnTracker() *connTracker {
	return &connTracker{
		conns: make(map[peer.ID]map[network.Conn]struct{}),
		seen:  make(map[peer.ID]struct{}),
	}
}

func (t *Transport) connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	if !t.gater.permitted(p) {
		// Block raced with a connection that passed the gater just before.
		go c.Close()
		return
	}
	ct := t.tracker
	ct.mu.Lock()
	set := ct.conns[p]
	if set == nil {
		set = make(map[network.Conn]struct{}, 1)
		ct.conns[p] = set
	}
	if _, dup := set[c]; dup {
		ct.mu.Unlock()
		return
	}
	set[c] = struct{}{}
	first := len(set) == 1
	if first {
		ct.seen[p] = struct{}{}
		t.events.push(peerEvent{id: p, up: true})
	}
	ct.mu.Unlock()
	if first {
		t.memberUp(p)
	}
}

func (t *Transport) disconnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	ct := t.tracker
	ct.mu.Lock()
	set := ct.conns[p]
	_, tracked := set[c]
	if tracked {
		delete(set, c)
		if len(set) == 0 {
			delete(ct.conns, p)
			t.events.push(peerEvent{id: p, up: false})
		}
	}
	down := tracked && len(set) == 0
	ct.mu.Unlock()
	if down {
		t.memberDown(p)
	}
}

func (t *Transport) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF:    t.connected,
		DisconnectedF: t.disconnected,
	}
}

// up returns the peers with at least one open connection, sorted.
func (ct *connTracker) up() []peer.ID {
	ct.mu.Lock()
	ids := make([]peer.ID, 0, len(ct.conns))
	for id := range ct.conns {
		ids = append(ids, id)
	}
	ct.mu.Unlock()
	slices.Sort(ids)
	return ids
}

func (ct *connTracker) isUp(p peer.ID) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return len(ct.conns[p]) > 0
}

func (ct *connTracker) wasSeen(p peer.ID) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	_, ok := ct.seen[p]
	return ok
}
