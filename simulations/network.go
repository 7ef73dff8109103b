package simulations

import (
	"github.com/cespare/xxhash/v2"
)

// The virtual network. Links are directed: a message from a to b takes the
// link's delay plus a uniform draw in [0, jitter) (so jitter reorders), is
// lost with the link's loss probability and duplicated (a second copy with
// its own delay) with its duplication probability. Faults block links
// (partitions, one-way partitions, flaps) or degrade them.
//
// Connections sit above links, one per pair of nodes, as the transport's
// connections do: a pair is connected while both nodes run and both
// directions of the link are up. A link down for Network.Detect drops the
// connection (PeerDown at both ends); a link back up for Network.Reconnect
// restores it (PeerUp at both ends, which starts anti-entropy). A crash
// drops its connections at once. Gossip goes to every connected peer;
// direct messages need the connection, as a send over a closed stream fails.

type linkParams struct {
	delay, jitter int64
	loss, dup     float64
}

type conn struct {
	up    bool   // both cores were told PeerUp
	want  bool   // what the links say the state should become
	gen   uint64 // invalidates pending connect/disconnect events
	epoch uint64 // messages of an older connection are dropped
}

type degradeFault struct {
	a, b          []bool
	loss, dup     float64
	delay, jitter int64
}

func (d *degradeFault) covers(from, to int) bool {
	return (d.a[from] && d.b[to]) || (d.b[from] && d.a[to])
}

type network struct {
	n                 int
	base              []linkParams // from*n+to
	detect, reconnect int64
	block             []int32 // from*n+to: active faults blocking the link
	conns             []conn  // min*n+max
	degrades          []*degradeFault
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
	channel          channel
	duplicate, track bool
}

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
	case 'E':
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

// send puts a message on the link from→to.
func (e *engine) send(from, to int, gossip bool, data []byte) {
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
	}
	m := &message{from: from, to: to, fromInc: e.nodes[from].inc, toInc: e.nodes[to].inc,
		epoch: c.epoch, gossip: gossip, data: data, channel: ch}
	p := nw.params(from, to)
	if nw.blocked(from, to) || (p.loss > 0 && e.rng.Float64() < p.loss) {
		st.Lost++
		return
	}
	e.schedule(m, p)
	if p.dup > 0 && e.rng.Float64() < p.dup {
		st.Duplicated++
		d := *m
		d.duplicate = true
		e.schedule(&d, p)
	}
}

func (e *engine) schedule(m *message, p linkParams) {
	delay := p.delay
	if p.jitter > 0 {
		delay += e.rng.Int64N(p.jitter)
	}
	e.q.push(e.now+delay, func() { e.deliver(m) })
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
	e.fingerprint('M', m.from, m.to, int64(m.channel), int64(xxhash.Sum64(m.data)))
	now := e.localTime(to)
	var err error
	if m.gossip {
		err = to.core.ReceiveGossip(now, from.peer, m.data)
	} else {
		err = to.core.ReceiveDirect(now, from.peer, m.data)
	}
	if err != nil {
		e.stats.rejected++
		e.record(TraceEvent{Kind: "rejected", Node: to.name, Peer: from.name, Detail: err.Error()})
	}
	e.dirty = true
	e.collect(to)
}

// reconsider brings the connection of a and b towards what the links allow:
// a drop after Detect, a reconnect after Reconnect, cancelled if the links
// change back meanwhile.
func (e *engine) reconsider(a, b int) {
	if a == b {
		return
	}
	if a > b {
		a, b = b, a
	}
	nw := e.net
	c := nw.conn(a, b)
	want := e.nodes[a].up && e.nodes[b].up && !nw.blocked(a, b) && !nw.blocked(b, a)
	if want == c.want {
		return
	}
	c.want = want
	c.gen++
	gen := c.gen
	switch {
	case want && !c.up:
		e.q.push(e.now+nw.reconnect, func() {
			if c.gen == gen && !c.up {
				e.connect(a, b)
			}
		})
	case !want && c.up:
		e.q.push(e.now+nw.detect, func() {
			if c.gen == gen && c.up {
				e.disconnect(a, b)
			}
		})
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
	c.up, c.want = true, true
	c.epoch++
	e.stats.connects++
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
	c.up = false
	c.epoch++
	e.stats.disconnects++
	e.record(TraceEvent{Kind: "peer_down", Node: e.nodes[a].name, Peer: e.nodes[b].name})
	e.fingerprint('D', a, b, 0, 0)
	for _, p := range [2][2]int{{a, b}, {b, a}} {
		n := e.nodes[p[0]]
		if n.up {
			n.core.PeerDown(e.localTime(n), e.nodes[p[1]].peer)
			e.collect(n)
		}
	}
}
