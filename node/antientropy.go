package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// syncWindow is how many numbered data messages of a round one side may
// have sent and not yet seen stored: memory and queue space per round are
// bounded by it times SyncChunkBytes, whatever the size of the difference.
const syncWindow = 4

// summaryEntry is the size of one session in a bucket summary: the hash
// of its id and the hash of its state.
const summaryEntry = 16

type roundKey struct {
	peer      PeerID
	id        uint64
	initiator bool
}

// round is one side of an anti-entropy round.
type round struct {
	started  time.Time
	deadline time.Time // pushed back by every step forward: a round fails when it stalls
	// periodic is set on a round this side started on its SyncInterval
	// timer: it leaves buckets in motion to gossip (deferBucket).
	periodic bool

	// What this side sends: the sessions of full buckets, then summaries
	// of the others, from cursors, one storage read at a time.
	planned   bool
	held      bucketSet // buckets this side held sessions in when the round began
	full      []int
	fullPos   int
	fullAfter string
	summ      []int
	summPos   int
	summAfter string
	reading   bool // a scan or summary read is in flight
	scanDone  bool
	finSent   bool
	seq       uint32
	unacked   map[uint32]bool

	// Summaries from the peer waiting for an answer, oldest first; the
	// first is being answered from answerAfter.
	summaries  []summary
	answering  bool
	answerSent uint32

	// What the peer sends.
	peerTotal       int // scan messages the peer sent (its fin), -1 until known
	processed       int // of those, stored or answered
	storing         int // applies in flight
	answersExpected int
	answersStored   int

	// What crossed each way, for the report and the log line.
	bytesOut, bytesIn       int
	sessionsOut, sessionsIn int
}

// summary is a peer's summary of a run of buckets: the first from after,
// the last up to upto (or its end), those between whole.
type summary struct {
	seq         uint32
	buckets     []int
	after, upto string
	entries     map[uint64]uint64
	// Where the answer's next read starts.
	cursorIdx   int
	cursorAfter string
	answers     uint32 // answer messages sent so far
}

// heldBuckets returns the buckets of d that hold sessions.
func heldBuckets(d *persist.Digests) bucketSet {
	s := newBucketSet()
	for i, v := range d.Buckets {
		if v != 0 {
			s.add(i)
		}
	}
	return s
}

// ownFull returns the full buckets this side sends: those it held sessions
// in when the round began. A bucket it held nothing in may hold the peer's
// sessions by the time it is read, which the peer has no use for.
func (r *round) ownFull(full bucketSet) []int {
	var out []int
	for _, b := range sortedBuckets(full) {
		if r.held.has(b) {
			out = append(out, b)
		}
	}
	return out
}

func newRound(now time.Time, timeout time.Duration) *round {
	return &round{started: now, deadline: now.Add(timeout), unacked: map[uint32]bool{}, peerTotal: -1}
}

func (c *Core) progress(now time.Time, r *round) { r.deadline = now.Add(c.cfg.SyncTimeout) }

func (c *Core) activeWith(p PeerID, initiator bool) bool {
	for k := range c.rounds {
		if k.peer == p && k.initiator == initiator {
			return true
		}
	}
	return false
}

// startRound starts a round with p; periodic for the SyncInterval timer's
// rounds (those of a new connection compare every bucket).
func (c *Core) startRound(now time.Time, p PeerID, periodic bool) {
	if len(c.rounds) >= c.cfg.MaxConcurrentSyncs || c.activeWith(p, true) {
		return
	}
	c.rounds[roundKey{peer: p, id: c.newRound(now, p), initiator: true}].periodic = periodic
}

func (c *Core) newRound(now time.Time, p PeerID) uint64 {
	c.roundSeq++
	k := roundKey{peer: p, id: c.roundSeq, initiator: true}
	r := newRound(now, c.cfg.SyncTimeout)
	c.rounds[k] = r
	c.send(k.peer, kindRoot, &rootMsg{Round: k.id, Root: c.store.Root(), SentAt: now.UnixMilli()}, r)
	return k.id
}

// StartSync starts an anti-entropy round now with peer p, or with a peer
// of the core's choosing when p is empty, and returns the peer and the
// round's id: its end comes out in Ready.Rounds. A round already under way
// with p that this peer started is returned instead of a second one. It
// fails with ErrUnknownPeer when p (or, for "", any peer) is not connected
// and with ErrSyncBusy when MaxConcurrentSyncs rounds are running.
func (c *Core) StartSync(now time.Time, p PeerID) (PeerID, uint64, error) {
	if p == "" {
		var ok bool
		if p, ok = c.randomPeer(); !ok {
			return "", 0, fmt.Errorf("%w: no peer connected", ErrUnknownPeer)
		}
	}
	if _, ok := c.peers[p]; !ok || p == c.self {
		return "", 0, fmt.Errorf("%w: %s", ErrUnknownPeer, p)
	}
	for _, k := range c.sortedRounds() {
		if k.peer == p && k.initiator {
			return p, k.id, nil
		}
	}
	if len(c.rounds) >= c.cfg.MaxConcurrentSyncs {
		return "", 0, fmt.Errorf("%w: %d rounds running", ErrSyncBusy, len(c.rounds))
	}
	return p, c.newRound(now, p), nil
}

func (c *Core) send(to PeerID, kind byte, v any, r *round) {
	data, err := encodeMsg(kind, v)
	if err != nil {
		c.log.Error("cannot encode message", "err", err)
		return
	}
	if r != nil {
		r.bytesOut += len(data)
	}
	c.m.Add("sync_bytes", float64(len(data)), "dir", "out")
	c.ready.Messages = append(c.ready.Messages, Message{To: to, Data: data})
}

// ReceiveDirect handles an anti-entropy message from a peer.
func (c *Core) ReceiveDirect(now time.Time, from PeerID, data []byte) error {
	kind, err := messageKind(data)
	if err != nil {
		if errors.Is(err, ErrOldProtocol) {
			if at, ok := c.oldPeers[from]; !ok || now.Sub(at) > 10*time.Minute {
				c.oldPeers[from] = now
				c.log.Warn("peer speaks an older anti-entropy protocol; its rounds are refused until it is upgraded",
					"with", string(from), "err", err)
			}
		}
		return err
	}
	if kind == kindDeltas {
		return c.onDeltas(now, from, data) // replication, not anti-entropy
	}
	c.m.Add("sync_bytes", float64(len(data)), "dir", "in")
	side := func(fromInitiator bool, round uint64) (roundKey, *round) {
		k := roundKey{peer: from, id: round, initiator: !fromInitiator}
		r := c.rounds[k]
		if r != nil {
			r.bytesIn += len(data)
			c.progress(now, r)
		}
		return k, r
	}
	switch kind {
	case kindRoot:
		var m rootMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		c.observeOffset(now, from, m.SentAt)
		return c.onRoot(now, from, &m)
	case kindAgree, kindBusy:
		var m agreeMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		if kind == kindAgree {
			c.observeOffset(now, from, m.SentAt)
		}
		k, r := side(false, m.Round)
		if r != nil {
			result := "agree"
			if kind == kindBusy {
				result = "busy"
			}
			c.finish(now, k, result)
		}
		return nil
	case kindDigests:
		// Decoded into the core's buffer (msgpack reuses a slice large
		// enough): onDigests reads it before anything else does.
		m := digestsMsg{Buckets: c.digestBuf()}
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		c.observeOffset(now, from, m.SentAt)
		k, r := side(false, m.Round)
		if r == nil {
			return nil // timed out meanwhile
		}
		return c.onDigests(now, k, r, &m)
	case kindPlan:
		var m planMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		k, r := side(true, m.Round)
		if r == nil || r.planned {
			return nil
		}
		full, summ := bucketSet(m.Full), bucketSet(m.Summary)
		if !full.valid() || !summ.valid() {
			return fmt.Errorf("%w: plan of %d+%d bytes", ErrBadMessage, len(m.Full), len(m.Summary))
		}
		r.planned, r.full, r.summ = true, r.ownFull(full), sortedBuckets(summ)
		c.pump(now, k, r)
		return nil
	case kindEntries:
		var m entriesMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		k, r := side(m.FromInitiator, m.Round)
		return c.onEntries(now, k, r, &m)
	case kindCredit:
		var m creditMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		// A credit is about data the receiver of the credit sent.
		k, r := side(m.FromInitiator, m.Round)
		if r == nil || !r.unacked[m.Seq] {
			return nil
		}
		delete(r.unacked, m.Seq)
		r.answersExpected += int(m.Answers)
		c.pump(now, k, r)
		return nil
	case kindFin:
		var m finMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		k, r := side(m.FromInitiator, m.Round)
		if r == nil {
			return nil
		}
		r.peerTotal = int(m.Total)
		c.pump(now, k, r)
		return nil
	case kindAbort:
		var m abortMsg
		if err := decodeMsg(data, &m); err != nil {
			return err
		}
		k, r := side(m.FromInitiator, m.Round)
		if r != nil {
			c.fail(now, k, r, "peer_failed", false)
		}
		return nil
	}
	if kind == kindFetched {
		return c.onFetched(now, from, data)
	}
	if ok, err := c.partDirect(now, from, kind, data); ok {
		return err
	}
	return fmt.Errorf("%w: unknown kind %q from %s", ErrBadMessage, kind, from)
}

func (c *Core) onRoot(now time.Time, from PeerID, m *rootMsg) error {
	if _, ok := c.peers[from]; !ok {
		c.peers[from] = &peerState{}
	}
	if m.Root == c.store.Root() {
		c.send(from, kindAgree, &agreeMsg{Round: m.Round, SentAt: now.UnixMilli()}, nil)
		c.peers[from].lastSync = now
		return nil
	}
	k := roundKey{peer: from, id: m.Round}
	if _, ok := c.rounds[k]; !ok && len(c.rounds) >= c.cfg.MaxConcurrentSyncs {
		// Say so, so that the initiator frees its slot now rather than
		// at its timeout.
		c.send(from, kindBusy, &agreeMsg{Round: m.Round, SentAt: now.UnixMilli()}, nil)
		c.m.Add("sync_rounds", 1, "result", "refused_busy")
		return nil
	}
	c.store.DigestsInto(&c.digests)
	root := &c.digests
	r := newRound(now, c.cfg.SyncTimeout)
	r.held = heldBuckets(root)
	c.rounds[k] = r
	c.send(from, kindDigests, &digestsMsg{Round: m.Round, SentAt: now.UnixMilli(), Buckets: c.packDigests(root)}, r)
	return nil
}

// onDigests plans the round: the buckets that differ, each sent whole when
// one side holds nothing there (the other has no use for a summary) and
// summarised first otherwise, so that a large store with scattered
// differences sends only the sessions that differ.
func (c *Core) onDigests(now time.Time, k roundKey, r *round, m *digestsMsg) error {
	theirs, err := unpackDigests(m.Buckets)
	if err != nil {
		return err
	}
	c.store.DigestsInto(&c.digests)
	mine := &c.digests
	full, summ := newBucketSet(), newBucketSet()
	ps := c.peers[k.peer]
	for i := range theirs {
		switch {
		case theirs[i] == mine.Buckets[i]:
			// No longer deferred (below).
		case !c.sharedBucket(k.peer, i):
		case r.periodic && !c.gainedSlot(i) && c.deferBucket(now, ps, i):
		case theirs[i] == 0 || mine.Buckets[i] == 0:
			full.add(i)
		default:
			summ.add(i)
		}
	}
	if ps != nil {
		// The buckets that agree now are no longer deferred: a pass over
		// the few deferred rather than a map deletion for each of the
		// thousands that agree.
		for b := range ps.deferred {
			if theirs[b] == mine.Buckets[b] {
				delete(ps.deferred, b)
			}
		}
	}
	c.send(k.peer, kindPlan, &planMsg{Round: k.id, Full: full, Summary: summ}, r)
	r.held = heldBuckets(mine)
	r.planned, r.full, r.summ = true, r.ownFull(full), sortedBuckets(summ)
	c.pump(now, k, r)
	return nil
}

// settleWindow is how recently a bucket must have changed here for a
// periodic round to leave it to gossip: a tenth of SyncInterval, at most
// a second (well beyond the replication lag of a healthy mesh).
func (c *Core) settleWindow() time.Duration { return min(c.cfg.SyncInterval/10, time.Second) }

// maxDeferral bounds how long a bucket that differs from a peer's may be
// left out of the periodic rounds with that peer: once it is, the next one
// compares it whatever its motion, so that a divergence in a bucket that
// never stops changing is still repaired, one round later than without
// deferral. In a long burst, rounds with a peer compare its busy buckets
// every other time.
func (c *Core) maxDeferral() time.Duration { return c.cfg.SyncInterval }

// deferBucket reports whether a periodic round with the peer of ps should
// leave bucket b, which differs, to gossip: b changed here within
// settleWindow, so its difference is most likely writes in flight, which
// gossip delivers anyway. During a write burst most buckets are in that
// state, and comparing them would read and send every session in them
// (and merge on the other side what gossip brings a moment later). A bucket
// deferred for maxDeferral with this peer is compared.
func (c *Core) deferBucket(now time.Time, ps *peerState, b int) bool {
	if ps == nil || now.UnixMilli()-c.changed[b] >= c.settleWindow().Milliseconds() {
		return false
	}
	if ps.deferred == nil {
		ps.deferred = make(map[int]time.Time)
	}
	since, ok := ps.deferred[b]
	if !ok {
		ps.deferred[b] = now
		return true
	}
	if now.Sub(since) < c.maxDeferral() {
		return true
	}
	delete(ps.deferred, b)
	return false
}

// bucketChanged records that a change to session id reached the store at
// now, for deferBucket.
func (c *Core) bucketChanged(now time.Time, id string) {
	c.changed[persist.BucketOf(id)] = now.UnixMilli()
}

// pump moves a round's side forward: the next read when the window has
// room, the next answer, the fin, the end.
func (c *Core) pump(now time.Time, k roundKey, r *round) {
	if !r.planned {
		return
	}
	if !r.answering && len(r.summaries) > 0 {
		// Answers go first and regardless of the window: they are bounded
		// by the peer's window of summaries, and holding them back on ours
		// could stall both sides.
		r.answering = true
		s := r.summaries[0]
		c.scan(now, k, scanAnswer, StorageOp{Buckets: s.buckets[s.cursorIdx:], After: s.cursorAfter, Upto: s.upto, Filter: s.filter()})
	}
	if !r.reading && !r.scanDone && len(r.unacked) < syncWindow {
		switch {
		case r.fullPos < len(r.full):
			r.reading = true
			end := min(len(r.full), r.fullPos+64)
			c.scan(now, k, scanFull, StorageOp{Buckets: r.full[r.fullPos:end], After: r.fullAfter})
		case r.summPos < len(r.summ):
			r.reading = true
			end := min(len(r.summ), r.summPos+256)
			op := StorageOp{Buckets: r.summ[r.summPos:end], After: r.summAfter}
			// A summary costs summaryEntry bytes a session, whatever the
			// session's size: bound it by count.
			op.MaxBytes = math.MaxInt
			op.MaxSessions = max(1, c.cfg.SyncChunkBytes/summaryEntry)
			c.scan(now, k, scanSummary, op)
		default:
			r.scanDone = true
		}
	}
	if r.scanDone && !r.finSent {
		r.finSent = true
		c.send(k.peer, kindFin, &finMsg{Round: k.id, FromInitiator: k.initiator, Total: r.seq - r.answerSent}, r)
	}
	if r.finSent && len(r.unacked) == 0 && r.peerTotal >= 0 && r.processed == r.peerTotal &&
		len(r.summaries) == 0 && r.storing == 0 && r.answersStored == r.answersExpected {
		c.finish(now, k, "repaired")
	}
}

type scanKind uint8

const (
	scanFull scanKind = iota + 1
	scanSummary
	scanAnswer
)

func (c *Core) scan(now time.Time, k roundKey, kind scanKind, op StorageOp) {
	op.Kind, op.Now = StoreScan, now
	if op.MaxBytes == 0 {
		op.MaxBytes = c.cfg.SyncChunkBytes
	}
	if op.MaxSessions == 0 {
		op.MaxSessions = c.cfg.Limits.MaxBatchSessions
	}
	op.Ticket = c.newTicket(&task{scan: kind, round: k})
	c.ready.Storage = append(c.ready.Storage, op)
}

// filter keeps the sessions the summary's sender lacks or holds otherwise.
func (s summary) filter() func(*crdt.Session) bool {
	return func(x *crdt.Session) bool {
		h, ok := s.entries[xxhash.Sum64String(x.ID)]
		return !ok || h != persist.SessionHash(x)
	}
}

// scanned sends what a read of the round's buckets found.
func (c *Core) scanned(now time.Time, t *task, res StorageResult) {
	k := t.round
	r, ok := c.rounds[k]
	if !ok {
		return
	}
	if res.Err != nil {
		c.log.Error("reading buckets for anti-entropy", "with", string(k.peer), "err", res.Err)
		c.fail(now, k, r, "store_failed", true)
		return
	}
	c.progress(now, r)
	switch t.scan {
	case scanFull:
		r.reading = false
		if len(res.Sessions) > 0 {
			c.sendData(k, r, payloadSessions, nil, "", "", res.Sessions)
		}
		if res.More {
			for r.full[r.fullPos] != res.NextBucket {
				r.fullPos++
			}
			r.fullAfter = res.NextAfter
		} else {
			r.fullPos = min(len(r.full), r.fullPos+64)
			r.fullAfter = ""
		}
	case scanSummary:
		r.reading = false
		// The run of buckets the read covered: to its end, or to where it
		// stopped (the bucket it stopped in included when part of it was
		// read, up to the last id read).
		end := min(len(r.summ), r.summPos+256)
		upto, next, nextAfter := "", end, ""
		if res.More {
			next = r.summPos
			for r.summ[next] != res.NextBucket {
				next++
			}
			end, nextAfter = next, res.NextAfter
			if res.NextAfter != "" {
				end, upto = next+1, res.NextAfter
			}
		}
		packed := make([]byte, 0, summaryEntry*len(res.Sessions))
		for _, s := range res.Sessions {
			packed = binary.BigEndian.AppendUint64(packed, xxhash.Sum64String(s.ID))
			packed = binary.BigEndian.AppendUint64(packed, persist.SessionHash(s))
		}
		c.sendRaw(k, r, payloadSummary, r.summ[r.summPos:end], r.summAfter, upto, packed)
		r.summPos, r.summAfter = next, nextAfter
	case scanAnswer:
		s := r.summaries[0]
		if len(res.Sessions) > 0 {
			c.sendData(k, r, payloadAnswer, nil, "", "", res.Sessions)
			r.answerSent++
			s.answers++
			r.summaries[0] = s
		}
		if res.More {
			for s.buckets[s.cursorIdx] != res.NextBucket {
				s.cursorIdx++
			}
			s.cursorAfter = res.NextAfter
			r.summaries[0] = s
		} else {
			r.summaries = r.summaries[1:]
			r.processed++
			c.send(k.peer, kindCredit, &creditMsg{Round: k.id, FromInitiator: k.initiator, Seq: s.seq, Answers: s.answers}, r)
		}
		r.answering = false
	}
	c.pump(now, k, r)
}

// sendData encodes sessions as one numbered data message.
func (c *Core) sendData(k roundKey, r *round, payload uint8, buckets []int, after, upto string, ss []*crdt.Session) {
	data, err := crdt.MarshalBatch(crdt.NewBatch(ss...), c.cfg.Limits)
	if err != nil {
		c.log.Error("cannot encode anti-entropy chunk", "err", err)
		return
	}
	r.sessionsOut += len(ss)
	c.sendRaw(k, r, payload, buckets, after, upto, data)
}

func (c *Core) sendRaw(k roundKey, r *round, payload uint8, buckets []int, after, upto string, data []byte) {
	r.seq++
	r.unacked[r.seq] = true
	c.send(k.peer, kindEntries, &entriesMsg{Round: k.id, FromInitiator: k.initiator, Seq: r.seq, Payload: payload,
		Buckets: buckets, After: after, Upto: upto, Batch: data}, r)
}

func (c *Core) onEntries(now time.Time, k roundKey, r *round, m *entriesMsg) error {
	if m.Payload == payloadSummary {
		if r == nil {
			return nil
		}
		if len(m.Buckets) == 0 || len(m.Batch)%summaryEntry != 0 {
			return fmt.Errorf("%w: summary of %d buckets, %d bytes", ErrBadMessage, len(m.Buckets), len(m.Batch))
		}
		for i, b := range m.Buckets {
			if b < 0 || b >= persist.Buckets || i > 0 && b <= m.Buckets[i-1] {
				return fmt.Errorf("%w: summary buckets %v", ErrBadMessage, m.Buckets)
			}
		}
		s := summary{seq: m.Seq, buckets: m.Buckets, after: m.After, upto: m.Upto, cursorAfter: m.After,
			entries: make(map[uint64]uint64, len(m.Batch)/summaryEntry)}
		for i := 0; i < len(m.Batch); i += summaryEntry {
			s.entries[binary.BigEndian.Uint64(m.Batch[i:])] = binary.BigEndian.Uint64(m.Batch[i+8:])
		}
		r.summaries = append(r.summaries, s)
		c.pump(now, k, r)
		return nil
	}
	b, err := crdt.UnmarshalBatch(m.Batch, c.cfg.Limits)
	if err != nil {
		c.m.Add("deltas_rejected", 1, "reason", "malformed")
		return fmt.Errorf("node: anti-entropy from %s: %w", k.peer, err)
	}
	// Sessions are merged whatever the state of the round: they are
	// deltas like any other.
	t := &task{from: k.peer, batch: b}
	if r != nil {
		t.round, t.seq, t.inRound = k, m.Seq, true
		t.answer = m.Payload == payloadAnswer
		r.storing++
		r.sessionsIn += b.Len()
	}
	c.persist(now, t)
	return nil
}

// chunkStored acknowledges a round's data message once it is durable.
func (c *Core) chunkStored(now time.Time, t *task, err error) {
	k := t.round
	r, ok := c.rounds[k]
	if !ok {
		return
	}
	r.storing--
	if err != nil {
		c.fail(now, k, r, "store_failed", true)
		return
	}
	if t.answer {
		r.answersStored++
	} else {
		r.processed++
	}
	c.send(k.peer, kindCredit, &creditMsg{Round: k.id, FromInitiator: k.initiator, Seq: t.seq}, r)
	c.pump(now, k, r)
}

// fail ends a round as failed, telling the peer when the failure is ours.
func (c *Core) fail(now time.Time, k roundKey, r *round, reason string, tell bool) {
	if tell {
		c.send(k.peer, kindAbort, &abortMsg{Round: k.id, FromInitiator: k.initiator, Reason: reason}, r)
	}
	c.end(now, k, r, reason)
}

// finish ends a round that completed (repaired, agree) or was refused
// (busy).
func (c *Core) finish(now time.Time, k roundKey, result string) {
	r, ok := c.rounds[k]
	if !ok {
		return
	}
	if p, ok := c.peers[k.peer]; ok && result != "busy" {
		p.lastSync = now
		// The initiator plans a round, and its periodic rounds leave
		// buckets in motion to gossip (deferBucket): only its own rounds,
		// which compare every slot it gained, count them pulled.
		if k.initiator {
			c.partRoundDone(now, k.peer)
		}
	}
	c.end(now, k, r, result)
}

// end removes a round, counts it, logs it when it repaired something, and
// reports it in Ready.Rounds.
func (c *Core) end(now time.Time, k roundKey, r *round, result string) {
	delete(c.rounds, k)
	c.m.Add("sync_rounds", 1, "result", result)
	c.m.Observe("sync_seconds", now.Sub(r.started).Seconds())
	rep := SyncReport{
		Peer: k.peer, Round: k.id, Initiator: k.initiator,
		SessionsIn: r.sessionsIn, SessionsOut: r.sessionsOut,
		BytesIn: r.bytesIn, BytesOut: r.bytesOut,
		Started: r.started, Duration: now.Sub(r.started),
	}
	switch result {
	case "repaired":
		rep.Result = SyncRepaired
		if r.sessionsIn == 0 && r.sessionsOut == 0 {
			// The roots differed when the round began and agreed by the
			// time the buckets were compared (gossip got there first).
			rep.Result = SyncInSync
		}
	case "agree":
		rep.Result = SyncInSync
	default:
		rep.Result, rep.Reason = SyncFailed, result
	}
	if rep.Result == SyncRepaired {
		// Only rounds that moved sessions are logged: a healthy mesh
		// agrees every SyncInterval and says nothing.
		c.log.Info("anti-entropy round repaired", "with", string(k.peer), "initiator", k.initiator,
			"sessions_in", r.sessionsIn, "sessions_out", r.sessionsOut,
			"bytes_in", r.bytesIn, "bytes_out", r.bytesOut, "duration", rep.Duration)
	}
	c.ready.Rounds = append(c.ready.Rounds, rep)
}
