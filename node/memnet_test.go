package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// memNet is an in-memory network for node tests, with partitions. It
// carries bytes only, so every message goes through the real encoding.
type memNet struct {
	mu    sync.Mutex
	nodes map[PeerID]*memEndpoint
	cut   map[[2]PeerID]bool
	// loseGossip, when set, drops the broadcasts it returns true for, and
	// the direct delta messages that stand for them under partial
	// replication (kindDeltas, Core.deliverBatch).
	loseGossip func(from, to PeerID) bool
	// sendDelay, when set, is how long each direct message takes to send,
	// as over a slow link (set before the nodes start).
	sendDelay time.Duration
}

type memEndpoint struct {
	net *memNet
	id  PeerID
	in  Inbound

	// Direct messages arrive in order on the endpoint's own goroutine, as
	// from a stream: a sender never runs the receiver's handler, so two
	// nodes waiting on each other's queues do not deadlock in a test the
	// way they cannot over a real network.
	mu     sync.Mutex
	cond   *sync.Cond
	inbox  []directMsg
	closed bool
}

type directMsg struct {
	from PeerID
	data []byte
}

func (e *memEndpoint) deliverLoop() {
	for {
		e.mu.Lock()
		for len(e.inbox) == 0 && !e.closed {
			e.cond.Wait()
		}
		if e.closed {
			e.mu.Unlock()
			return
		}
		m := e.inbox[0]
		e.inbox = e.inbox[1:]
		e.mu.Unlock()
		e.in.HandleDirect(m.from, m.data)
	}
}

func newMemNet() *memNet {
	return &memNet{nodes: map[PeerID]*memEndpoint{}, cut: map[[2]PeerID]bool{}}
}

func (m *memNet) dialer(id PeerID) Dialer {
	return func(_ context.Context, in Inbound) (Network, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		e := &memEndpoint{net: m, id: id, in: in}
		e.cond = sync.NewCond(&e.mu)
		m.nodes[id] = e
		go e.deliverLoop()
		return e, nil
	}
}

func (m *memNet) linked(a, b PeerID) bool {
	_, okA := m.nodes[a]
	_, okB := m.nodes[b]
	return okA && okB && !m.cut[[2]PeerID{a, b}]
}

// connectAll announces every pair of endpoints to each other.
func (m *memNet) connectAll() {
	m.mu.Lock()
	var ids []PeerID
	for id := range m.nodes {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				m.endpoint(a).in.PeerUp(b)
			}
		}
	}
}

func (m *memNet) endpoint(id PeerID) *memEndpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nodes[id]
}

// partition cuts every link between the two groups.
func (m *memNet) partition(left, right []PeerID) {
	m.mu.Lock()
	for _, a := range left {
		for _, b := range right {
			m.cut[[2]PeerID{a, b}] = true
			m.cut[[2]PeerID{b, a}] = true
		}
	}
	m.mu.Unlock()
	for _, a := range left {
		for _, b := range right {
			m.endpoint(a).in.PeerDown(b)
			m.endpoint(b).in.PeerDown(a)
		}
	}
}

// heal restores every link and announces the peers again.
func (m *memNet) heal() {
	m.mu.Lock()
	pairs := make([][2]PeerID, 0, len(m.cut))
	for p := range m.cut {
		pairs = append(pairs, p)
	}
	clear(m.cut)
	m.mu.Unlock()
	for _, p := range pairs {
		m.endpoint(p[0]).in.PeerUp(p[1])
	}
}

func (e *memEndpoint) Self() PeerID { return e.id }

func (e *memEndpoint) Broadcast(_ context.Context, data []byte) error {
	e.net.mu.Lock()
	var to []*memEndpoint
	for id, o := range e.net.nodes {
		if id != e.id && e.net.linked(e.id, id) && (e.net.loseGossip == nil || !e.net.loseGossip(e.id, id)) {
			to = append(to, o)
		}
	}
	e.net.mu.Unlock()
	for _, o := range to {
		o.in.HandleGossip(e.id, slices.Clone(data))
	}
	return nil
}

func (e *memEndpoint) Send(_ context.Context, to PeerID, data []byte) error {
	if d := e.net.sendDelay; d > 0 {
		time.Sleep(d)
	}
	e.net.mu.Lock()
	o, ok := e.net.nodes[to]
	ok = ok && e.net.linked(e.id, to)
	lost := len(data) > 1 && data[1] == kindDeltas && e.net.loseGossip != nil && e.net.loseGossip(e.id, to)
	e.net.mu.Unlock()
	if !ok {
		return fmt.Errorf("memnet: %s unreachable from %s", to, e.id)
	}
	if lost {
		return nil
	}
	o.mu.Lock()
	o.inbox = append(o.inbox, directMsg{from: e.id, data: slices.Clone(data)})
	o.cond.Signal()
	o.mu.Unlock()
	return nil
}

func (e *memEndpoint) Close() error {
	e.net.mu.Lock()
	delete(e.net.nodes, e.id)
	e.net.mu.Unlock()
	e.mu.Lock()
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	return nil
}

// offsetClock is the wall clock moved by a settable offset, so tests can
// jump ahead in time while timers still fire.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
