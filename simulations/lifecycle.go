package simulations

import (
	"math/rand/v2"
	"time"

	"github.com/sessionmesh/sessionmesh/transport/timing"
)

// The transport's connection lifecycle, as package transport runs it
// (membership.go): a connected member is pinged every FailureTimeout/4 and
// declared lost once it has given no sign of life for FailureTimeout; an
// absent member is dialled at once and then every RedialInterval, jittered
// by ±20%, each dial bounded by DialTimeout. The defaults are transport's
// own (DefaultFailureTimeout, DefaultRedialInterval, DefaultDialTimeout),
// so that a change there changes what the simulator shows: a regression
// that slows reconnection after a long cut fails silent-cut-90s.
//
// What a silent cut does: the kernel drops packets and says nothing, so an
// open connection stays up at both ends (messages sent over it are lost)
// until failure detection notices; only then PeerDown, and the redial loop
// starts. A dial into a cut sends its SYN again after 1 s, 3 s, 7 s (Linux's
// doubling retransmission timer) until DialTimeout; whichever SYN finds the
// link back connects after the handshake (two round trips: TCP, then the
// security and muxer negotiation). A dial to a crashed process is refused
// at once (the host answers with a reset).

// Transport lifecycle defaults, from package transport (its timing
// subpackage, which links no libp2p).
var (
	defaultFailureTimeout = timing.FailureTimeout
	defaultRedialInterval = timing.RedialInterval
	defaultDialTimeout    = timing.DialTimeout
)

// defaultRedialJitter is the ±fraction transport jitters its redial pause
// by (Config.RedialInterval's doc: ±20%).
const defaultRedialJitter = 0.2

// synRetries are the offsets of a dial's SYN retransmissions.
var synRetries = []int64{int64(time.Second), int64(3 * time.Second), int64(7 * time.Second), int64(15 * time.Second), int64(31 * time.Second)}

type lifecycle struct {
	failure, ping, interval, dialTimeout, maxPause int64
	jitter, backoff                                float64
	readyMin                                       int
}

func newLifecycle(t *TransportSpec) lifecycle {
	l := lifecycle{
		failure:     int64(*t.FailureTimeout),
		interval:    int64(*t.RedialInterval),
		dialTimeout: int64(*t.DialTimeout),
		maxPause:    int64(*t.RedialMax),
		jitter:      *t.RedialJitter,
		backoff:     *t.RedialBackoff,
		readyMin:    t.ReadyMinPeers,
	}
	l.ping = max(l.failure/4, int64(50*time.Millisecond))
	return l
}

// dialer is one node's redial loop towards one member.
type dialer struct {
	gen      uint64
	active   bool
	failures int
	rng      *rand.Rand // streamDial
}

// watch starts or cancels failure detection on the connection of a and b
// after their links changed: a silent connection is declared lost at the
// first ping deadline after its last answered ping; one that comes back
// before then answers the next ping and stays.
func (e *engine) watch(a, b int) {
	nw := e.net
	c := nw.conn(a, b)
	silent := nw.blocked(a, b) || nw.blocked(b, a)
	switch {
	case silent && !c.detecting:
		c.detecting = true
		c.gen++
		gen := c.gen
		// Pings go out at since+phase+k·ping; the last one before the
		// cut was answered (its round trip is short next to the period).
		p := nw.life.ping
		first := c.since + c.phase
		alive := c.since
		if e.now >= first {
			alive = first + (e.now-first)/p*p
		}
		at := max(alive+nw.life.failure, e.now)
		e.q.push(at, func() {
			if c.gen == gen && c.up {
				c.detecting = false
				e.record(TraceEvent{Kind: "peer_lost", Node: e.nodes[a].name, Peer: e.nodes[b].name, Detail: "silent for the failure timeout"})
				e.disconnect(a, b)
			}
		})
	case !silent && c.detecting:
		c.detecting = false
		c.gen++
	}
}

// startDialing starts node i's redial loop towards j (at once, as
// transport's member loop does when a connection closes or the node
// starts).
func (e *engine) startDialing(i, j int) {
	d := &e.net.dialers[i*e.net.n+j]
	if d.active || !e.nodes[i].up || e.net.conn(i, j).up {
		return
	}
	d.active = true
	d.gen++
	gen := d.gen
	e.q.push(e.now, func() { e.dial(i, j, gen) })
}

// stopDialing ends node i's redial loop towards j.
func (e *engine) stopDialing(i, j int) {
	d := &e.net.dialers[i*e.net.n+j]
	d.active = false
	d.failures = 0
	d.gen++
}

// dial is one attempt of i's loop towards j, starting now.
func (e *engine) dial(i, j int, gen uint64) {
	nw := e.net
	d := &nw.dialers[i*nw.n+j]
	if d.gen != gen || !e.nodes[i].up || nw.conn(i, j).up {
		return
	}
	e.stats.dials++
	start := e.now
	pause := float64(nw.life.interval)
	for range d.failures {
		if pause >= float64(nw.life.maxPause) {
			break
		}
		pause *= nw.life.backoff
	}
	if nw.life.backoff > 1 {
		pause = min(pause, float64(nw.life.maxPause))
	}
	jf := 1 + nw.life.jitter*(2*d.rng.Float64()-1)
	next := start + int64(pause*jf)
	fail := func() {
		d.failures++
		e.q.push(max(e.now, next), func() { e.dial(i, j, gen) })
	}
	if !e.nodes[j].up {
		fail() // refused: nobody listens
		return
	}
	rtt := nw.base[i*nw.n+j].delay + nw.base[j*nw.n+i].delay
	var try func(k int)
	try = func(k int) {
		if d.gen != gen || !e.nodes[i].up || nw.conn(i, j).up {
			return
		}
		if !nw.blocked(i, j) && !nw.blocked(j, i) && e.nodes[j].up {
			e.q.push(e.now+2*rtt, func() {
				if d.gen != gen || nw.conn(i, j).up {
					return
				}
				if e.nodes[i].up && e.nodes[j].up && !nw.blocked(i, j) && !nw.blocked(j, i) {
					e.connect(min(i, j), max(i, j))
					return
				}
				fail()
			})
			return
		}
		if k < len(synRetries) && start+synRetries[k] < start+nw.life.dialTimeout {
			e.q.push(start+synRetries[k], func() { try(k + 1) })
			return
		}
		e.q.push(start+nw.life.dialTimeout, func() {
			if d.gen == gen {
				fail()
			}
		})
	}
	try(0)
}

// ready reports whether node n passes the readiness check the scenario
// models (transport.ready_min_peers connected peers; 0: always).
func (e *engine) ready(n *simNode) bool {
	if e.net.life.readyMin <= 0 {
		return true
	}
	peers := 0
	for j := range e.nodes {
		if j != n.idx && e.net.conn(n.idx, j).up {
			peers++
		}
	}
	return peers >= e.net.life.readyMin
}
