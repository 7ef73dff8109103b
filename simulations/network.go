package simulations

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// The virtual network. Links are directed: a message from a to b takes the
// link's delay plus a uniform draw in [0, jitter) (so jitter reorders), is
// lost with the link's loss probability and duplicated (a second copy with
// its own delay) with its duplication probability. Faults block links
// (partitions, one-way partitions, flaps) or degrade them.
//
// Connections sit above links, one per pair of nodes, and follow the
// transport's lifecycle (lifecycle.go): a silent cut leaves the connection
// up, losing what is sent over it, until failure detection drops it
// (PeerDown at both ends); the redial loops of both ends then bring it
// back (PeerUp at both ends, which starts anti-entropy) once a dial gets
// through. A crash drops its connections at once. Gossip goes to every
// connected peer; direct messages need the connection, as a send over a
// closed stream fails.

type linkParams struct {
	delay, jitter int64
	loss, dup     float64
}

type conn struct {
	up        bool   // both cores were told PeerUp
	detecting bool   // silent: failure detection is under way
	gen       uint64 // invalidates a pending detection
	epoch     uint64 // messages of an older connection are dropped
	since     int64  // when it came up
	phase     int64  // of its pings, after since
}

type degradeFault struct {
	a, b          []bool
	oneWay        bool
	loss, dup     float64
	delay, jitter int64
}

func (d *degradeFault) covers(from, to int) bool {
	return (d.a[from] && d.b[to]) || (!d.oneWay && d.b[from] && d.a[to])
}

type network struct {
	n        int
	base     []linkParams // from*n+to
	life     lifecycle
	block    []int32      // from*n+to: active faults blocking the link
	conns    []conn       // min*n+max
	dialers  []dialer     // from*n+to: from's redial loop towards to
	rngs     []*rand.Rand // from*n+to: the link's stream (streamLink)
	degrades []*degradeFault
}

func (nw *network) blocked(from, to int) bool { return nw.block[from*nw.n+to] > 0 }

func (nw *network) conn(a, b int) *conn {
	if a > b {
		a, b = b, a
	}
	return &nw.conns[a*nw.n+b]
}

func (nw *network) params(from, to int) linkParams {
	p := nw.base[from*nw.n+to]
	for _, d := range nw.degrades {
		if d.covers(from, to) {
			p.delay += d.delay
			p.jitter += d.jitter
			p.loss = 1 - (1-p.loss)*(1-d.loss)
			p.dup = 1 - (1-p.dup)*(1-d.dup)
		}
	}
	return p
}

// message is one copy of a message in flight.
type message struct {
	from, to         int
	fromInc, toInc   uint32
	epoch            uint64
	gossip           bool
	data             []byte
	payload          *gossipPayload // gossip: shared by the broadcast's copies
	channel          channel
	duplicate, track bool
}

// gossipPayload is a broadcast, decoded once for all its recipients: the
// production decoder (node.DecodeGossip) runs on every message sent, and
// each recipient takes its own copy of the batch through
// Core.ReceiveGossipBatch, as from a transport that validates gossip
// before delivering it (p2pnode). Decoding it again for every recipient
// cost a tenth of a run.
type gossipPayload struct {
	data    []byte
	decoded bool
	batch   *crdt.Batch
	err     error
	copies  int // in flight: once none is, it serves another broadcast
	// sum is data's hash for the fingerprint, taken at the first
	// delivery (summed): every copy delivers the same bytes.
	sum    uint64
	summed bool
}

// sum returns the hash of m's bytes the fingerprint takes: a broadcast's
// copies share it, hashed once.
func (m *message) sum() uint64 {
	p := m.payload
	if p == nil {
		return xxhash.Sum64(m.data)
	}
	if !p.summed {
		p.sum, p.summed = xxhash.Sum64(p.data), true
	}
	return p.sum
}

// receiveGossip hands node to the gossip m carries.
func (e *engine) receiveGossip(to, from *simNode, now time.Time, m *message) error {
	p := m.payload
	if !p.decoded {
		p.batch, p.err = node.DecodeGossip(p.data, e.cfg.Limits)
		p.decoded = true
	}
	if p.err != nil {
		// Malformed: the core rejects it as it would any, with its error
		// and its count.
		return to.core.ReceiveGossip(now, from.peer, m.data)
	}
	// Every recipient gets the same batch, as each would get its own
	// decode of the same bytes: the core does not modify what it is given
	// (Core.ReceiveGossipBatch; hooks.verifyShared checks it in tests).
	if e.hooks != nil && e.hooks.verifyShared {
		if err := unchanged(p, e.cfg.Limits); err != nil {
			e.err = fmt.Errorf("simulations: broadcast to %s: %w", to.name, err)
		}
	}
	to.core.ReceiveGossipBatch(now, from.peer, p.batch)
	return nil
}

// unchanged reports an error unless p's batch still equals a fresh decode
// of its bytes.
func unchanged(p *gossipPayload, l crdt.Limits) error {
	fresh, err := node.DecodeGossip(p.data, l)
	if err != nil {
		return err
	}
	if fresh.Len() != p.batch.Len() {
		return fmt.Errorf("shared batch holds %d sessions, decoded %d", p.batch.Len(), fresh.Len())
	}
	for _, d := range fresh.Sessions() {
		if got := p.batch.Get(d.ID); got == nil || !got.Equal(d) {
			return fmt.Errorf("shared batch's delta of %s was modified by a core that received it", d.ID)
		}
	}
	return nil
}

// receiveDirect hands node to a direct message, as Node does: a fetch
// (a session asked for by a peer filling a gap, or reading a session it
// does not hold) is answered from the store, everything else goes to the
// core.
func (e *engine) receiveDirect(to, from *simNode, now time.Time, data []byte) error {
	id, ok, err := node.FetchRequest(data)
	if !ok {
		return to.core.ReceiveDirect(now, from.peer, data)
	}
	if err != nil {
		return err
	}
	s, err := to.store.Get(id)
	if err != nil {
		if !errors.Is(err, persist.ErrNotFound) {
			e.fail(fmt.Errorf("simulations: %s: get: %w", to.name, err))
		}
		s = nil
	}
	if s != nil && e.hooks != nil && e.hooks.staleFetches {
		s = s.Header() // planted: the fields are left out
	}
	to.core.AnswerFetch(from.peer, id, s)
	return nil
}

// kindHandoff is node's handoff message kind (wire.go), for the planted
// bugs' hooks.
const kindHandoff = 'O'

// channel classifies traffic for the figures.
type channel int

const (
	chGossip channel = iota
	chRoot
	chAgree
	chDigests
	chEntries
	chOther
	numChannels
)

var channelNames = [numChannels]string{"gossip", "ae_root", "ae_agree", "ae_digests", "ae_entries", "ae_other"}

func classify(gossip bool, data []byte) channel {
	if gossip {
		return chGossip
	}
	if len(data) < 2 {
		return chOther
	}
	switch data[1] {
	case 'R':
		return chRoot
	case 'A':
		return chAgree
	case 'D':
		return chDigests
	case 'E', 'P', 'C', 'F', 'X':
		return chEntries
	}
	return chOther
}

// ChannelStats counts one channel's traffic. Sent counts copies put on
// links (a broadcast counts once per recipient); Lost those the network
// dropped (loss, blocked links, crashes, closed connections); Duplicated
// the extra copies it made.
type ChannelStats struct {
	Sent       int64 `json:"sent"`
	Bytes      int64 `json:"bytes"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
}

// send puts a message on the link from→to: gossip when g, the broadcast
// it is a copy of, is set.
func (e *engine) send(from, to int, data []byte, g *gossipPayload) {
	gossip := g != nil
	nw := e.net
	ch := classify(gossip, data)
	st := &e.stats.channels[ch]
	st.Sent++
	st.Bytes += int64(len(data))
	c := nw.conn(from, to)
	if !c.up {
		st.Lost++
		return
	}
	if e.hooks != nil && e.hooks.rewrite != nil {
		data = e.hooks.rewrite(e, from, to, gossip, data)
		if gossip {
			g = &gossipPayload{data: data} // this copy's own
		}
	}
	p := nw.params(from, to)
	rng := nw.rngs[from*nw.n+to]
	if nw.blocked(from, to) || (p.loss > 0 && rng.Float64() < p.loss) {
		st.Lost++
		return
	}
	m := e.message()
	*m = message{from: from, to: to, fromInc: e.nodes[from].inc, toInc: e.nodes[to].inc,
		epoch: c.epoch, gossip: gossip, data: data, payload: g, channel: ch}
	e.schedule(m, p)
	if p.dup > 0 && rng.Float64() < p.dup {
		st.Duplicated++
		d := e.message()
		*d = *m
		d.duplicate = true
		e.schedule(d, p)
	}
}

// payload returns a gossip payload for broadcast b: one whose copies were
// all delivered when there is one (a run broadcasts a hundred thousand).
func (e *engine) payload(b []byte) *gossipPayload {
	if n := len(e.sparePayloads); n > 0 {
		p := e.sparePayloads[n-1]
		e.sparePayloads = e.sparePayloads[:n-1]
		p.data = b
		return p
	}
	return &gossipPayload{data: b}
}

// release notes that a copy of p is gone (or that none was sent): with no
// copy left in flight, nothing refers to p any more. The batch it decoded
// is the cores' to keep.
func (e *engine) release(p *gossipPayload) {
	if p.copies--; p.copies <= 0 {
		*p = gossipPayload{}
		e.sparePayloads = append(e.sparePayloads, p)
	}
}

// message returns a message to fill: a delivered one when there is one
// (a run sends hundreds of thousands, each gone once delivered).
func (e *engine) message() *message {
	if n := len(e.spare); n > 0 {
		m := e.spare[n-1]
		e.spare = e.spare[:n-1]
		return m
	}
	return new(message)
}

// recycle takes back a delivered message, which nothing refers to any
// more.
func (e *engine) recycle(m *message) {
	if m.payload != nil {
		e.release(m.payload)
	}
	*m = message{}
	e.spare = append(e.spare, m)
}

func (e *engine) schedule(m *message, p linkParams) {
	if m.payload != nil {
		m.payload.copies++
	}
	delay := p.delay
	if p.jitter > 0 {
		delay += e.net.rngs[m.from*e.net.n+m.to].Int64N(p.jitter)
	}
	e.q.add(event{at: e.now + delay, m: m})
}

// deliver hands a message to its recipient, unless the network lost it
// meanwhile: a crash at either end, a new connection, or a blocked link.
func (e *engine) deliver(m *message) {
	st := &e.stats.channels[m.channel]
	from, to := e.nodes[m.from], e.nodes[m.to]
	c := e.net.conn(m.from, m.to)
	if !to.up || to.inc != m.toInc || from.inc != m.fromInc || c.epoch != m.epoch || !c.up || e.net.blocked(m.from, m.to) {
		st.Lost++
		return
	}
	st.Delivered++
	e.fingerprint('M', m.from, m.to, int64(m.channel), int64(m.sum()))
	now := e.localTime(to)
	var err error
	if m.gossip {
		err = e.receiveGossip(to, from, now, m)
	} else if e.part == nil || !e.answer(to, m.data) {
		if e.hooks != nil && e.hooks.handoffUnstored && len(m.data) > 1 && m.data[1] == kindHandoff {
			// Planted: the holder acknowledges what it never stores.
			to.unstored = true
			defer func() { to.unstored = false }()
		}
		err = e.receiveDirect(to, from, now, m.data)
	}
	if err != nil {
		e.stats.rejected++
		e.record(TraceEvent{Kind: "rejected", Node: to.name, Peer: from.name, Detail: err.Error()})
	}
	e.dirty = true
	e.collect(to)
}

// reconsider follows a change of the links of a and b: a connection that
// went silent starts failure detection, one that came back stops it.
// (Reconnection is the redial loops' business.)
func (e *engine) reconsider(a, b int) {
	if a == b {
		return
	}
	if e.net.conn(a, b).up {
		e.watch(a, b)
	}
}

func (e *engine) reconsiderAll() {
	for a := range e.nodes {
		for b := a + 1; b < len(e.nodes); b++ {
			e.reconsider(a, b)
		}
	}
}

// connect tells both cores about the new connection.
func (e *engine) connect(a, b int) {
	c := e.net.conn(a, b)
	c.up, c.detecting = true, false
	c.gen++
	c.epoch++
	c.since = e.now
	c.phase = e.net.rngs[a*e.net.n+b].Int64N(e.net.life.ping)
	e.stopDialing(a, b)
	e.stopDialing(b, a)
	e.stats.connects++
	defer e.checkReconnected()
	e.record(TraceEvent{Kind: "peer_up", Node: e.nodes[a].name, Peer: e.nodes[b].name})
	e.fingerprint('U', a, b, 0, 0)
	for _, p := range [2][2]int{{a, b}, {b, a}} {
		n := e.nodes[p[0]]
		n.core.PeerUp(e.localTime(n), e.nodes[p[1]].peer)
		e.collect(n)
	}
}

// disconnect tells the running ends that the connection dropped.
func (e *engine) disconnect(a, b int) {
	c := e.net.conn(a, b)
	c.up, c.detecting = false, false
	c.gen++
	c.epoch++
	e.stats.disconnects++
	e.record(TraceEvent{Kind: "peer_down", Node: e.nodes[a].name, Peer: e.nodes[b].name})
	e.fingerprint('D', a, b, 0, 0)
	for _, p := range [2][2]int{{a, b}, {b, a}} {
		n := e.nodes[p[0]]
		if n.up {
			n.core.PeerDown(e.localTime(n), e.nodes[p[1]].peer)
			e.collect(n)
			e.startDialing(p[0], p[1])
		}
	}
	// A new connection may also have been made meanwhile (by a collect
	// above): then the dialers stopped again.
	if c.up {
		e.stopDialing(a, b)
		e.stopDialing(b, a)
	}
}
