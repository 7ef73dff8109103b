package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/internal/placement"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Partial replication (Config.Replicas > 0, docs/partial-replication.md):
// each region holds every session on Replicas of its peers, chosen per
// slot by rendezvous hashing (internal/placement) over the region's
// members. The Core learns members from hello messages, places slots, keeps
// what it holds, drops the rest of what gossip and anti-entropy bring,
// restricts anti-entropy to the slots both sides hold, and hands the
// sessions it stores in slots it does not hold (its own writes, slots it
// lost) to their holders, dropping them once every holder in its region
// stored them.

// helloMsg announces a peer's region and replication setting (kindHello),
// on every new connection.
type helloMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Region   string
	Replicas int // 0: every slot
}

// handoffMsg carries sessions to a holder (kindHandoff); the holder stores
// them whatever its own view of placement and acknowledges Seq
// (kindHandoffAck, Batch empty) once they are durable.
type handoffMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint64
	Batch    []byte
}

// partMember is a peer as partial replication sees it.
type partMember struct {
	region   string
	replicas int
	up       bool
	downAt   time.Time
	learned  uint64 // order of its first hello: members are listed in it
}

// handoff is a handoff in flight: scanning (sessions not read yet),
// waiting for its holders' acknowledgements, or dropping what they stored.
type handoff struct {
	seq      uint64
	deadline time.Time
	scanned  bool
	waiting  map[PeerID]bool // holders yet to acknowledge
	sessions []persist.Handed
	// slots it carries sessions of: a handoff started meanwhile scans
	// the others, or it would send the same sessions again.
	slots    []int
	dropping bool
}

// maxHandoffs bounds the handoffs in flight. One at a time waited a round
// trip to the holders, their durable apply and this peer's drop for every
// SyncChunkBytes: a 9-peer mesh loading sessions on every peer handed
// hints off at about 300 a second while its writers ran, slower than they
// wrote. Each handoff carries at most SyncChunkBytes, so this bounds what
// is in flight to a few chunks.
const maxHandoffs = 4

// partial is the Core's partial replication state.
type partial struct {
	tables map[string]*placement.Table // per region, over its placement members
	// held is the slots this peer holds; readers outside the Core's lock
	// (Node.read) load it.
	held   atomic.Pointer[bucketSet]
	gained bucketSet // slots gained and not yet compared with a holder
	// serving is held minus gained, for readers outside the Core's lock
	// (ServesID): a slot just gained is empty here until pulled, and a
	// read answered from this store then said "not found" of live
	// sessions, even of this peer's own handed-off writes.
	serving atomic.Pointer[bucketSet]
	// expiry is when the next down member leaves placement; placeAt,
	// when set, is when membership changed: placement is recomputed at
	// the next tick, once for a burst of hellos.
	expiry      time.Time
	placeAt     time.Time
	nextHandoff time.Time
	// nextHello is when this peer greets its connected peers again: a
	// hello lost on its way (a stream that failed while the connection
	// stayed up) would otherwise leave this peer out of that peer's
	// placement until they reconnect, and the two disagreeing on the
	// holders for good.
	nextHello  time.Time
	handoffSeq uint64
	inflight   map[uint64]*handoff // by seq, at most maxHandoffs
	// Figures for status and metrics.
	handedOff, handoffBytes uint64
	lastScanEmpty           bool
}

// partTask marks the Core's storage work for partial replication.
type partTask uint8

const (
	partScan partTask = iota + 1 // read sessions to hand off
	partDrop                     // drop what the holders stored
	partIn                       // store a handoff from a peer, then acknowledge it
)

func newPartial(c *Core, now time.Time) *partial {
	p := &partial{gained: newBucketSet(), nextHandoff: now.Add(c.cfg.HandoffInterval), nextHello: now.Add(c.helloInterval()),
		inflight: map[uint64]*handoff{}}
	c.part = p
	c.announce = true
	c.place(now)
	c.partRO.Store(p)
	return p
}

// placementMembers returns the members of region that take part in
// placement at now: partial peers up, or down for less than HolderGrace,
// and this peer in its own region.
func (c *Core) placementMembers(now time.Time, region string) []string {
	var out []string
	if region == c.cfg.Region {
		out = append(out, string(c.self))
	}
	var ms []PeerID
	for id, m := range c.hellos {
		if m.region == region && m.replicas > 0 && (m.up || now.Sub(m.downAt) < c.cfg.HolderGrace) {
			ms = append(ms, id)
		}
	}
	// In the order they were learned: a deterministic list, whatever the
	// map's order (placement sorts it; a planted bug does not).
	slices.SortFunc(ms, func(a, b PeerID) int { return cmp.Compare(c.hellos[a].learned, c.hellos[b].learned) })
	for _, id := range ms {
		out = append(out, string(id))
	}
	return out
}

// place recomputes the placement of every region from the members known at
// now, and what this peer holds.
func (c *Core) place(now time.Time) {
	p := c.part
	p.placeAt = time.Time{}
	regions := map[string]bool{c.cfg.Region: true}
	p.expiry = time.Time{}
	for _, m := range c.hellos {
		regions[m.region] = true
		if !m.up && m.replicas > 0 {
			if at := m.downAt.Add(c.cfg.HolderGrace); at.After(now) && (p.expiry.IsZero() || at.Before(p.expiry)) {
				p.expiry = at
			}
		}
	}
	tables := make(map[string]*placement.Table, len(regions))
	for r := range regions {
		ms := c.placementMembers(now, r)
		if old, ok := p.tables[r]; ok && old.Replicas() == c.cfg.Replicas && slices.Equal(old.Members(), sortedCopy(ms)) {
			tables[r] = old
			continue
		}
		tables[r] = placement.NewTable(ms, c.cfg.Replicas)
	}
	p.tables = tables
	held := newBucketSet()
	own := tables[c.cfg.Region]
	for s := range placement.Slots {
		if own.Holds(s, string(c.self)) {
			held.add(s)
		}
	}
	old := p.held.Load()
	gained, lost := 0, 0
	for s := range placement.Slots {
		switch {
		case held.has(s) && (old == nil || !old.has(s)):
			if old != nil {
				p.gained.add(s)
			}
			gained++
		case !held.has(s) && old != nil && old.has(s):
			lost++
		}
	}
	p.held.Store(&held)
	// A gained slot that no other peer holds has nobody to pull it from
	// (its other holders left for good): this peer's copy is all there
	// is, and it serves it rather than wait for a pull that never comes.
	for s := range placement.Slots {
		if p.gained.has(s) && !c.otherHolder(s) {
			p.gained[s/8] &^= 1 << (s % 8)
		}
	}
	p.publishServing()
	defer c.partGauges()
	if old != nil && (gained > 0 || lost > 0) {
		c.log.Info("placement changed", "slots_held", held.count(), "gained", gained, "lost", lost,
			"members", len(own.Members()))
		c.m.Add("slots_moved", float64(gained), "dir", "in")
		c.m.Add("slots_moved", float64(lost), "dir", "out")
		if lost > 0 {
			p.nextHandoff = now // start handing the lost slots off now
		}
		if gained > 0 {
			c.nextSync = now // pull the gained slots now (syncPeer)
		}
	}
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// holds reports whether this peer holds slot s.
func (p *partial) holds(s int) bool { return p.held.Load().has(s) }

// peerHolds reports whether peer q holds slot s in this peer's view: a
// peer that said no hello (an older one) or replicates everything holds
// every slot.
func (c *Core) peerHolds(q PeerID, s int) bool {
	if q == c.self {
		return c.part.holds(s)
	}
	m, ok := c.hellos[q]
	if !ok || m.replicas == 0 {
		return true
	}
	t := c.part.tables[m.region]
	return t != nil && t.Holds(s, string(q))
}

// Holders returns the holders of session id's slot in this peer's region,
// in placement order, this peer included if it is one. Nil when
// replication is full.
func (c *Core) Holders(id string) []PeerID {
	if c.part == nil {
		return nil
	}
	hs := c.part.tables[c.cfg.Region].Holders(placement.SlotOf(id))
	out := make([]PeerID, len(hs))
	for i, h := range hs {
		out[i] = PeerID(h)
	}
	return out
}

// otherHolder reports whether a peer other than this one holds slot s, in
// any region's placement.
func (c *Core) otherHolder(s int) bool {
	for _, t := range c.part.tables {
		for _, h := range t.Holders(s) {
			if PeerID(h) != c.self {
				return true
			}
		}
	}
	return false
}

// publishServing recomputes serving from held and gained.
func (p *partial) publishServing() {
	s := slices.Clone(*p.held.Load())
	for i := range s {
		s[i] &^= p.gained[i]
	}
	p.serving.Store(&s)
}

// ServesID reports whether a read of session id on this peer is answered
// from its own store: it holds the slot, and has pulled it since gaining
// it (always under full replication). Otherwise the read goes to the
// holders. Safe to call concurrently with the Core's other methods.
func (c *Core) ServesID(id string) bool {
	p := c.partRO.Load()
	if p == nil {
		return true
	}
	s := p.serving.Load()
	return s == nil || s.has(placement.SlotOf(id))
}

// HoldsID reports whether this peer holds session id: always under full
// replication. Safe to call concurrently with the Core's other methods.
func (c *Core) HoldsID(id string) bool {
	p := c.partRO.Load()
	return p == nil || p.holds(placement.SlotOf(id))
}

// readHolders returns the connected holders of id to ask for it, and
// whether they are of this peer's region: those of its region, or, when
// none of them is connected, those of the other regions. wide asks for
// the other regions' holders only, for the second round of a read whose
// own region's holders stayed silent: a holder cut off without its
// connections dropping yet looks connected until failure detection
// closes them (seconds), and with R = 1 it is its region's only copy.
func (c *Core) readHolders(id string, wide bool) (to []PeerID, own bool) {
	s := placement.SlotOf(id)
	var mine, other []PeerID
	for _, q := range c.Peers() {
		m, ok := c.hellos[q.ID]
		if !ok || !c.peerHolds(q.ID, s) {
			continue
		}
		if m.region == c.cfg.Region {
			mine = append(mine, q.ID)
		} else {
			other = append(other, q.ID)
		}
	}
	if len(mine) > 0 && !wide {
		return mine, true
	}
	return other, false
}

// ReadRemote sends a fetch of session id to the connected holders that
// should answer a read on this peer (which does not hold it), and returns
// them and whether they are of this peer's region; Node waits for their
// answers (kindFetched). wide asks the other regions' holders, once the
// region's own stayed silent for a round.
func (c *Core) ReadRemote(id string, wide bool) (asked []PeerID, own bool) {
	if c.part == nil {
		return nil, false
	}
	to, own := c.readHolders(id, wide)
	for _, p := range to {
		c.send(p, kindFetch, &fetchMsg{ID: id}, nil)
	}
	c.m.Add("remote_reads", 1)
	return to, own
}

// ObserveRead takes the timestamps of a session read from its holders
// into this peer's clock, as a merge would: a write that follows the read
// here is then stamped after everything the read saw.
func (c *Core) ObserveRead(now time.Time, s *crdt.Session) {
	if s != nil {
		_ = c.clock.Observe(s.MaxTimestamp(), now) // beyond the drift bound: stamps stay local
	}
}

// keepHeld removes from b the sessions of slots this peer does not hold:
// gossip and anti-entropy data for them is for other peers.
func (c *Core) keepHeld(b *crdt.Batch) *crdt.Batch {
	ss := b.Sessions()
	keep := 0
	for _, s := range ss {
		if c.part.holds(placement.SlotOf(s.ID)) {
			keep++
		}
	}
	if keep == len(ss) {
		return b
	}
	out := crdt.NewBatch()
	for _, s := range ss {
		if c.part.holds(placement.SlotOf(s.ID)) {
			out.Add(s)
		} else {
			c.ready.NotHeld = append(c.ready.NotHeld, s)
			delete(c.parked, s.ID) // its holders take it
		}
	}
	c.m.Add("deltas_not_held", float64(len(ss)-keep))
	return out
}

// deliverBatch sends the deltas of b to the connected peers that hold
// their slots, in every region: one direct message per peer (kindDeltas),
// with the sessions of b that peer holds, in b's order. So a peer
// receives, decodes and applies only what it stores, and the work of the
// mesh per write is R per region instead of every peer
// (docs/partial-replication.md, "Delivery to holders"). What a send
// loses (a full queue, a broken stream, a holder down or not yet
// connected, views of placement that differ) anti-entropy repairs, as it
// does for gossip; a guarded delta that arrives before the one it waits
// for is parked as from gossip.
//
// Peers that take every delta by gossip still get b by gossip: a peer
// that replicates everything (Replicas 0 announces no hello) or has not
// said hello yet (just connected, or an older build). Partial peers that
// receive that gossip keep what they hold, as before.
func (c *Core) deliverBatch(b *crdt.Batch) error {
	for q := range c.peers {
		if m, ok := c.hellos[q]; !ok || m.replicas == 0 {
			if err := c.gossipBatch(b); err != nil {
				return err
			}
			break
		}
	}
	per := map[PeerID]*crdt.Batch{}
	for _, s := range b.Sessions() {
		slot := placement.SlotOf(s.ID)
		for _, t := range c.part.tables {
			for _, h := range t.Holders(slot) {
				q := PeerID(h)
				if q == c.self {
					continue
				}
				if _, up := c.peers[q]; !up {
					continue
				}
				if m, ok := c.hellos[q]; !ok || m.replicas == 0 {
					continue // it has the gossip
				}
				pb := per[q]
				if pb == nil {
					pb = crdt.NewBatch()
					per[q] = pb
				}
				pb.Add(s)
			}
		}
	}
	for _, q := range slices.Sorted(mapsKeys(per)) {
		data, err := crdt.MarshalBatch(per[q], c.cfg.Limits)
		if err != nil {
			return err
		}
		msg := make([]byte, 2+len(data))
		msg[0], msg[1] = wireVersion, kindDeltas
		copy(msg[2:], data)
		c.ready.Messages = append(c.ready.Messages, Message{To: q, Data: msg})
		c.m.Add("direct_batches_sent", 1)
		c.m.Add("direct_deltas_sent", float64(per[q].Len()))
	}
	c.m.Add("batches_sent", 1)
	c.m.Add("deltas_sent", float64(b.Len()))
	c.m.Observe("batch_deltas", float64(b.Len()))
	return nil
}

// onDeltas takes deltas a peer sent this one directly (deliverBatch): as
// gossip, keeping what this peer holds. Any peer takes them, under full
// replication too (it may have gone back to full while the sender's view
// lags).
func (c *Core) onDeltas(now time.Time, from PeerID, data []byte) error {
	b, err := crdt.UnmarshalBatch(data[2:], c.cfg.Limits)
	if err != nil {
		c.m.Add("deltas_rejected", 1, "reason", "malformed")
		return fmt.Errorf("node: deltas from %s: %w", from, err)
	}
	c.ReceiveGossipBatch(now, from, b)
	return nil
}

// sharedBucket reports whether an anti-entropy round with q compares
// bucket b: both sides hold it.
func (c *Core) sharedBucket(q PeerID, b int) bool {
	return c.part == nil || c.part.holds(b) && c.peerHolds(q, b)
}

// partPeerUp greets a new connection with this peer's region and setting.
func (c *Core) partPeerUp(now time.Time, q PeerID) {
	if c.announce {
		c.send(q, kindHello, &helloMsg{Region: c.cfg.Region, Replicas: c.cfg.Replicas}, nil)
	}
	if m, ok := c.hellos[q]; ok && !m.up {
		m.up = true
		c.replace(now)
	}
}

func (c *Core) partPeerDown(now time.Time, q PeerID) {
	if m, ok := c.hellos[q]; ok && m.up {
		m.up, m.downAt = false, now
	}
	if c.part == nil {
		return
	}
	c.replace(now) // the expiry is set then
	for seq, h := range c.part.inflight {
		if h.waiting[q] && !h.dropping {
			delete(c.part.inflight, seq) // it will not answer: start again
		}
	}
}

func (c *Core) onHello(now time.Time, from PeerID, data []byte) error {
	var m helloMsg
	if err := decodeMsg(data, &m); err != nil {
		return err
	}
	if m.Replicas != c.cfg.Replicas && c.part != nil {
		c.log.Warn("peer replicates with another setting; placement may differ while a change of replicas rolls out",
			"with", string(from), "its_replicas", m.Replicas, "ours", c.cfg.Replicas)
	}
	_, connected := c.peers[from]
	old, ok := c.hellos[from]
	if ok && old.region == m.Region && old.replicas == m.Replicas && old.up == connected {
		return nil
	}
	learned := uint64(len(c.hellos))
	if ok {
		learned = old.learned
	} else {
		for _, o := range c.hellos {
			learned = max(learned, o.learned+1)
		}
	}
	c.hellos[from] = &partMember{region: m.Region, replicas: m.Replicas, up: connected, downAt: now, learned: learned}
	c.replace(now)
	return nil
}

// replace has placement recomputed at the next tick.
func (c *Core) replace(now time.Time) {
	if c.part != nil && c.part.placeAt.IsZero() {
		c.part.placeAt = now
	}
}

// partNext is when partial replication next needs a Tick.
func (c *Core) partNext() time.Time {
	if c.part == nil {
		return time.Time{}
	}
	// While no handoff can start (maxHandoffs in flight, or one still
	// scanning: the next must skip the slots it will carry) only their
	// deadlines matter: a due nextHandoff would make the runtime tick in a
	// loop.
	var next time.Time
	if c.part.canStartHandoff() {
		next = c.part.nextHandoff
	}
	for _, h := range c.part.inflight {
		if !h.dropping && (next.IsZero() || h.deadline.Before(next)) {
			next = h.deadline
		}
	}
	for _, at := range []time.Time{c.part.expiry, c.part.placeAt, c.part.nextHello} {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

func (c *Core) partTick(now time.Time) {
	p := c.part
	if p == nil {
		return
	}
	if !p.expiry.IsZero() && !now.Before(p.expiry) || !p.placeAt.IsZero() && !now.Before(p.placeAt) {
		c.place(now)
	}
	for seq, h := range p.inflight {
		if !h.dropping && !now.Before(h.deadline) {
			c.log.Debug("handoff timed out", "waiting", len(h.waiting))
			delete(p.inflight, seq)
		}
	}
	if p.canStartHandoff() && !now.Before(p.nextHandoff) {
		p.nextHandoff = now.Add(c.jitter(c.cfg.HandoffInterval))
		c.startHandoff(now)
	}
	if !now.Before(p.nextHello) {
		p.nextHello = now.Add(c.jitter(c.helloInterval()))
		for _, q := range c.Peers() {
			c.send(q.ID, kindHello, &helloMsg{Region: c.cfg.Region, Replicas: c.cfg.Replicas}, nil)
		}
	}
}

// helloInterval is the period of the repeated hellos: a lost one is made
// good within about a HolderGrace (the time placement already waits for a
// peer that went down), and at least a SyncInterval apart.
func (c *Core) helloInterval() time.Duration {
	return max(c.cfg.HolderGrace, c.cfg.SyncInterval, time.Second)
}

// notHeldBuckets returns the buckets the store holds sessions in that this
// peer does not hold.
func (c *Core) notHeldBuckets() []int {
	c.store.DigestsInto(&c.digests)
	d := &c.digests
	held := c.part.held.Load()
	var out []int
	for b, v := range d.Buckets {
		if v != 0 && !held.has(b) {
			out = append(out, b)
		}
	}
	return out
}

// canStartHandoff reports whether another handoff may start: fewer than
// maxHandoffs in flight and none of them still scanning.
func (p *partial) canStartHandoff() bool {
	if len(p.inflight) >= maxHandoffs {
		return false
	}
	for _, h := range p.inflight {
		if !h.scanned {
			return false
		}
	}
	return true
}

func (c *Core) startHandoff(now time.Time) {
	bs := c.notHeldBuckets()
	if len(c.part.inflight) > 0 {
		taken := map[int]bool{}
		for _, h := range c.part.inflight {
			for _, s := range h.slots {
				taken[s] = true
			}
		}
		bs = slices.DeleteFunc(bs, func(b int) bool { return taken[b] })
	}
	if len(bs) == 0 {
		return
	}
	c.part.handoffSeq++
	c.part.inflight[c.part.handoffSeq] = &handoff{seq: c.part.handoffSeq, deadline: now.Add(c.cfg.SyncTimeout)}
	op := StorageOp{Kind: StoreScan, Now: now, Buckets: bs, MaxBytes: c.cfg.SyncChunkBytes,
		MaxSessions: c.cfg.Limits.MaxBatchSessions}
	op.Ticket = c.newTicket(&task{part: partScan, partSeq: c.part.handoffSeq})
	c.ready.Storage = append(c.ready.Storage, op)
}

// partStored takes the result of partial replication's storage work.
func (c *Core) partStored(now time.Time, t *task, res StorageResult) {
	p := c.part
	if p == nil && t.part != partIn {
		return // replication went back to full meanwhile
	}
	switch t.part {
	case partIn:
		c.applied(now, t, res)
		if res.Err == nil && len(res.Apply.Deferred) == 0 && !refusedToKeep(res.Apply.Refused) {
			c.send(t.from, kindHandoffAck, &handoffMsg{Seq: t.partSeq}, nil)
		}
	case partScan:
		h := p.inflight[t.partSeq]
		if h == nil {
			return
		}
		h.scanned = true
		if res.Err != nil {
			c.log.Error("reading sessions to hand off", "err", res.Err)
			delete(p.inflight, h.seq)
			return
		}
		c.sendHandoff(now, h, res.Sessions)
		if res.More {
			p.nextHandoff = now // the rest right after this part, beside it
		}
	case partDrop:
		delete(p.inflight, t.partSeq)
		if res.Err != nil {
			c.log.Error("dropping handed-off sessions", "err", res.Err)
			return
		}
		p.handedOff += uint64(res.Collected)
		c.m.Add("sessions_handed_off", float64(res.Collected))
		c.partGauges()
		if len(c.notHeldBuckets()) > 0 {
			p.nextHandoff = now
		}
	}
}

// refusedToKeep reports whether a store refused a handed-off session for a
// reason other than its deadline (the merged session over the limits, a
// record it cannot read): acknowledging the handoff would let the sender
// drop the only copy of writes it acknowledged. Without the ack the sender
// keeps the sessions and hands them off again; an expired one is refused
// everywhere and may go.
func refusedToKeep(rs []persist.Refusal) bool {
	for _, r := range rs {
		if !errors.Is(r.Err, crdt.ErrExpired) {
			return true
		}
	}
	return false
}

// sendHandoff sends each holder in this peer's region the sessions it
// holds of ss; sessions with a holder not connected wait for a later pass.
func (c *Core) sendHandoff(now time.Time, h *handoff, ss []*crdt.Session) {
	own := c.part.tables[c.cfg.Region]
	per := map[PeerID]*crdt.Batch{}
	for _, s := range ss {
		slot := placement.SlotOf(s.ID)
		if c.part.holds(slot) {
			continue // gained meanwhile
		}
		hs := own.Holders(slot)
		ok := len(hs) > 0
		for _, q := range hs {
			if _, up := c.peers[PeerID(q)]; !up {
				ok = false
			}
		}
		if !ok {
			continue
		}
		for _, q := range hs {
			b := per[PeerID(q)]
			if b == nil {
				b = crdt.NewBatch()
				per[PeerID(q)] = b
			}
			b.Add(s)
		}
		h.sessions = append(h.sessions, persist.Handed{ID: s.ID, Hash: persist.SessionHash(s)})
		if n := len(h.slots); n == 0 || h.slots[n-1] != slot {
			h.slots = append(h.slots, slot)
		}
	}
	if len(h.sessions) == 0 {
		delete(c.part.inflight, h.seq)
		return
	}
	h.waiting = map[PeerID]bool{}
	for _, q := range slices.Sorted(mapsKeys(per)) {
		data, err := crdt.MarshalBatch(per[q], c.cfg.Limits)
		if err != nil {
			c.log.Error("cannot encode a handoff", "err", err)
			delete(c.part.inflight, h.seq)
			return
		}
		h.waiting[q] = true
		c.part.handoffBytes += uint64(len(data))
		c.m.Add("handoff_bytes", float64(len(data)))
		c.send(q, kindHandoff, &handoffMsg{Seq: h.seq, Batch: data}, nil)
	}
}

func mapsKeys[V any](m map[PeerID]V) func(func(PeerID) bool) {
	return func(yield func(PeerID) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *Core) onHandoff(now time.Time, from PeerID, data []byte) error {
	var m handoffMsg
	if err := decodeMsg(data, &m); err != nil {
		return err
	}
	b, err := crdt.UnmarshalBatch(m.Batch, c.cfg.Limits)
	if err != nil {
		return err
	}
	c.m.Add("deltas_received", float64(b.Len()))
	t := &task{from: from, batch: b, part: partIn, partSeq: m.Seq}
	c.ready.Storage = append(c.ready.Storage, StorageOp{Ticket: c.newTicket(t), Kind: StoreApply, Now: now, Batch: b})
	return nil
}

func (c *Core) onHandoffAck(now time.Time, from PeerID, data []byte) error {
	var m handoffMsg
	if err := decodeMsg(data, &m); err != nil {
		return err
	}
	h := c.part.inflight[m.Seq]
	if h == nil || h.dropping || !h.waiting[from] {
		return nil
	}
	delete(h.waiting, from)
	if len(h.waiting) > 0 {
		return nil
	}
	h.dropping = true
	op := StorageOp{Kind: StoreDrop, Now: now, Handed: h.sessions}
	op.Ticket = c.newTicket(&task{part: partDrop, partSeq: h.seq})
	c.ready.Storage = append(c.ready.Storage, op)
	return nil
}

// partDirect handles partial replication's direct messages.
func (c *Core) partDirect(now time.Time, from PeerID, kind byte, data []byte) (bool, error) {
	switch kind {
	case kindHello:
		return true, c.onHello(now, from, data)
	case kindHandoff:
		return true, c.onHandoff(now, from, data)
	case kindHandoffAck:
		if c.part == nil {
			return true, nil
		}
		return true, c.onHandoffAck(now, from, data)
	}
	return false, nil
}

// SetReplicas changes Config.Replicas on the running peer (0: every
// session) and tells the connected peers. Going to partial replication,
// the peer hands off what it no longer holds, once the holders stored it;
// going to full replication, it pulls every slot by anti-entropy. Change
// the peers of a mesh one at a time (docs/partial-replication.md).
func (c *Core) SetReplicas(now time.Time, r int) {
	if r < 0 || r == c.cfg.Replicas {
		return
	}
	c.cfg.Replicas = r
	switch {
	case r == 0:
		c.part = nil
		c.partRO.Store(nil)
	case c.part == nil:
		newPartial(c, now)
	default:
		c.place(now)
	}
	c.announce = true
	for _, q := range c.Peers() {
		c.send(q.ID, kindHello, &helloMsg{Region: c.cfg.Region, Replicas: r}, nil)
		if r == 0 {
			c.startRound(now, q.ID, false) // pull the slots this peer did not hold
		}
	}
	c.log.Info("replication changed", "replicas", r)
}

// PlacementStatus describes partial replication on this peer.
type PlacementStatus struct {
	// Replicas is the holders per region (0: every peer holds every slot).
	Replicas int
	// Slots is the number of slots; SlotsHeld those this peer holds.
	Slots, SlotsHeld int
	// SlotsGained are held slots not yet compared with another holder by
	// anti-entropy; SlotsToHandOff the slots this peer stores sessions of
	// without holding them (its writes, slots it lost), until their holders
	// have them.
	SlotsGained, SlotsToHandOff int
	// RegionMembers is the placement members of this peer's region.
	RegionMembers []PeerID
	// Members counts the placement members of every region this peer
	// places slots in (its own included): the peers its deltas go to are
	// chosen among them, so a peer that has not yet heard every hello of
	// a region sends that region's copies to holders placement will move.
	Members map[string]int
	// SessionsHandedOff and HandoffBytes count what left this peer by
	// handoff since it started.
	SessionsHandedOff, HandoffBytes uint64
}

// Placement returns partial replication's status (Replicas 0 and every
// slot held when replication is full).
func (c *Core) Placement() PlacementStatus {
	st := PlacementStatus{Replicas: c.cfg.Replicas, Slots: placement.Slots, SlotsHeld: placement.Slots}
	if c.part == nil {
		return st
	}
	st.SlotsHeld = c.part.held.Load().count()
	st.SlotsGained = c.part.gained.count()
	st.SlotsToHandOff = len(c.notHeldBuckets())
	for _, m := range c.part.tables[c.cfg.Region].Members() {
		st.RegionMembers = append(st.RegionMembers, PeerID(m))
	}
	st.Members = make(map[string]int, len(c.part.tables))
	for rg, t := range c.part.tables {
		st.Members[rg] = len(t.Members())
	}
	st.SessionsHandedOff, st.HandoffBytes = c.part.handedOff, c.part.handoffBytes
	return st
}

// gainedSlot reports whether this peer gained slot b and has not compared
// it with a holder yet: a round this peer starts compares it whatever its
// motion (no deferBucket), since partRoundDone counts it pulled once the
// round ends (a round the other side started does not count: it may have
// left the slot to gossip).
func (c *Core) gainedSlot(b int) bool { return c.part != nil && c.part.gained.has(b) }

// partRoundDone clears the gained slots a completed round compared.
func (c *Core) partRoundDone(now time.Time, q PeerID) {
	if c.part == nil || c.part.gained.count() == 0 {
		return
	}
	for b := range placement.Slots {
		if c.part.gained.has(b) && c.peerHolds(q, b) {
			c.part.gained[b/8] &^= 1 << (b % 8)
		}
	}
	c.part.publishServing()
	if c.part.gained.count() > 0 {
		c.nextSync = now // the next tick pulls from another holder
	}
	c.partGauges()
}

// partGauges reports the slots held and moving.
func (c *Core) partGauges() {
	c.m.Observe("slots_held", float64(c.part.held.Load().count()))
	c.m.Observe("slots_moving", float64(c.part.gained.count()+len(c.notHeldBuckets())))
}

// syncPeer picks the peer of a periodic round: under partial replication a
// holder of a gained slot first, so new holders pull before the periodic
// rounds come around.
func (c *Core) syncPeer() (PeerID, bool) {
	if c.part != nil && c.part.gained.count() > 0 {
		for _, q := range c.Peers() {
			for b := range placement.Slots {
				if c.part.gained.has(b) && c.peerHolds(q.ID, b) {
					return q.ID, true
				}
			}
		}
	}
	if c.part != nil {
		// A round compares only the slots both sides hold: with R = 1 a
		// peer of the same region shares none, and a round with it would
		// repair nothing (a quarter of the rounds of 3 regions x 3).
		// Choose among the peers that share a slot, as randomPeer does.
		var share []PeerID
		for _, q := range c.Peers() {
			if c.sharesSlot(q.ID) {
				share = append(share, q.ID)
			}
		}
		if len(share) > 0 {
			return share[c.rng.IntN(len(share))], true
		}
	}
	return c.randomPeer()
}

// sharesSlot reports whether this peer and q both hold some slot.
func (c *Core) sharesSlot(q PeerID) bool {
	for b := range placement.Slots {
		if c.part.holds(b) && c.peerHolds(q, b) {
			return true
		}
	}
	return false
}
