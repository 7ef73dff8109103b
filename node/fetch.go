package node

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Direct session requests (session consistency, WithVersion): a peer whose
// copy of a session is behind the version a client shows it, and that
// replication has not brought up to date within
// Config.ConsistencyFetchAfter, asks the peers that wrote the missing parts
// for the session (kindFetch) and merges their answers (kindFetched) as it
// merges gossip. The runtime answers a fetch (it reads the store, which the
// Core does not); the Core sends fetches and merges answers.

// wholeStateBytes bounds the sessions whose whole-state writes (from a
// copy not known covered) are broadcast whole: a larger session's is
// broadcast as what changed, without its version entry, and versioned
// readers on other peers fetch it.
const wholeStateBytes = 4 << 10

// maxFetchPeers bounds the peers one fetch asks when none of the writers
// is connected.
const maxFetchPeers = 8

// fetchMsg asks for one session (kindFetch) or carries it (kindFetched:
// Batch is the session in a crdt batch, empty when the peer holds none).
type fetchMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	Batch    []byte
}

// NodeIDOf returns the crdt node id of peer p: the first 8 bytes of a
// SHA-256 of its id, what New gives every node. A version entry names its
// writer by it, so a peer can tell whom to ask for what it misses.
func NodeIDOf(p PeerID) crdt.NodeID {
	sum := sha256.Sum256([]byte(p))
	return crdt.NodeID(binary.BigEndian.Uint64(sum[:8]))
}

// Fetch asks for session id the connected peers whose node ids are among
// writers (the writers of what this peer misses), or, when none of them is
// connected, up to maxFetchPeers connected peers: any of them may hold it.
func (c *Core) Fetch(now time.Time, id string, writers []crdt.NodeID) {
	c.m.Add("consistency_fetches", float64(c.fetch(id, writers)))
}

// fetch sends the requests of Fetch and returns how many.
func (c *Core) fetch(id string, writers []crdt.NodeID) int {
	ids := c.Peers()
	var to []PeerID
	for _, p := range ids {
		if slices.Contains(writers, NodeIDOf(p.ID)) {
			to = append(to, p.ID)
		}
	}
	if c.part != nil {
		// Partial replication: the writers may have handed the session
		// off since; its holders have it.
		holders, _ := c.readHolders(id, false)
		for _, p := range holders {
			if !slices.Contains(to, p) {
				to = append(to, p)
			}
		}
	}
	if len(to) == 0 {
		for _, p := range ids[:min(len(ids), maxFetchPeers)] {
			to = append(to, p.ID)
		}
	}
	for _, p := range to {
		c.send(p, kindFetch, &fetchMsg{ID: id}, nil)
	}
	return len(to)
}

// AnswerFetch sends peer from the session it asked for, as the runtime
// read it from the store (nil when the store holds none).
func (c *Core) AnswerFetch(from PeerID, id string, s *crdt.Session) {
	out := &fetchMsg{ID: id}
	if s != nil {
		if s.Covered() {
			// Every register of it is stood for by its entries: sent
			// as a whole state under an empty guard, it leaves the
			// asker's copy covered (crdt.Version).
			s = s.Clone()
			s.Guard = &crdt.Guard{}
		}
		data, err := crdt.MarshalBatch(crdt.NewBatch(s), c.cfg.Limits)
		if err != nil {
			c.log.Error("cannot answer a fetch", "err", err)
			return
		}
		out.Batch = data
	}
	c.send(from, kindFetched, out, nil)
}

// onFetched merges a fetched session like a gossip batch.
func (c *Core) onFetched(now time.Time, from PeerID, data []byte) error {
	var m fetchMsg
	if err := decodeMsg(data, &m); err != nil {
		return err
	}
	if len(m.Batch) == 0 {
		return nil
	}
	b, err := crdt.UnmarshalBatch(m.Batch, c.cfg.Limits)
	if err != nil {
		return err
	}
	c.persist(now, &task{from: from, batch: b})
	return nil
}

// FetchRequest returns the session id a fetch message asks for, if data is
// one (ok), with an error when it is malformed. The runtime answers it (it
// reads the store, the Core does not) with Core.AnswerFetch, as Node does
// (answerFetch); the simulator does the same.
func FetchRequest(data []byte) (id string, ok bool, err error) {
	if kind, err := messageKind(data); err != nil || kind != kindFetch {
		return "", false, nil
	}
	var m fetchMsg
	if err := decodeMsg(data, &m); err != nil {
		return "", true, err
	}
	return m.ID, true, nil
}

// answerFetch reads the session a peer asked for and has the Core send it.
func (n *Node) answerFetch(from PeerID, id string) {
	s, err := n.store.Get(id)
	if err != nil {
		if !errors.Is(err, persist.ErrNotFound) {
			n.log.Warn("cannot read a session a peer asked for", "err", err)
			return
		}
		s = nil
	}
	n.step(func(c *Core, _ time.Time) { c.AnswerFetch(from, id, s) })
}

// gapFetchWindow is how long a session whose version entry a gossip delta
// could not give (a gap: a delta of its writer missed or late) is not
// asked for again.
const gapFetchWindow = time.Second

// gapFetchAfter is how long a parked delta from gossip waits for what its
// guard asks before its writers are asked for the session (at least
// Config.ConsistencyFetchAfter): gossipsub validates messages
// concurrently, so a writer's deltas often arrive a few milliseconds out
// of order, and the one waited for is then on its way.
const gapFetchAfter = 100 * time.Millisecond

// maxGapFetches bounds the sessions remembered as asked for; past it, gaps
// wait for anti-entropy.
const maxGapFetches = 4096

// repairGap asks the writers of delta d for its session: this peer missed
// something they held (d's guard failed, Change.Dropped), and without a
// whole state it would hold d's fields without its version entry, and
// miss the earlier write, until anti-entropy. A change-only delta repairs
// no earlier loss by itself as a whole state did, so the gap is filled
// as soon as it is due (park), once per session and gapFetchWindow. A gap
// due within the window of the session's last fetch (a second loss soon
// after the first: that answer may not have covered it) returns when it
// may be asked for, so that fetchGaps asks then: dropped, it would wait for
// anti-entropy, the session's last writes missing here meanwhile.
func (c *Core) repairGap(now time.Time, id string, d *crdt.Session) (retry time.Time) {
	if at, ok := c.gapFetches[id]; ok && now.Sub(at) < gapFetchWindow {
		return at.Add(gapFetchWindow)
	}
	if len(c.gapFetches) >= maxGapFetches {
		for k, at := range c.gapFetches {
			if now.Sub(at) >= gapFetchWindow {
				delete(c.gapFetches, k)
			}
		}
		if len(c.gapFetches) >= maxGapFetches {
			return time.Time{}
		}
	}
	c.gapFetches[id] = now
	var writers []crdt.NodeID
	for _, e := range d.Version() {
		writers = append(writers, e.Node)
	}
	c.m.Add("gap_fetches", float64(c.fetch(id, writers)))
	return time.Time{}
}

// parkFor is how long a parked delta waits for what its guard asks; by
// then anti-entropy has brought its entries.
const parkFor = 10 * time.Second

type parkedDelta struct {
	d  *crdt.Session
	at time.Time
	// fetchAt, when set, is when to ask the writers for the session if the
	// delta is still parked (repairGap).
	fetchAt time.Time
	// retrying: a retry of d is in the store; joined: more was joined
	// into d since it left.
	retrying, joined bool
}

// park keeps guarded delta d, whose entries this peer dropped, joined with
// the ones parked before it for its session, until the session's copy here
// gains something (the delta it waits for, a fetched or anti-entropy
// state): applied's retry then merges it again, and if its guard is met by
// then, its entries are taken. Without it a steady stream of change-only
// writes to one session would stay one entry behind after a single gap:
// each delta's guard asks for the entry of the one before, which was
// dropped too. A delta from gossip that is still parked after
// gapFetchAfter makes this peer ask its writers for the session
// (fetchGaps).
func (c *Core) park(now time.Time, d *crdt.Session, gossip bool) {
	if d.Guard == nil {
		return
	}
	var fetchAt time.Time
	if gossip {
		fetchAt = now.Add(max(c.cfg.ConsistencyFetchAfter, gapFetchAfter))
	}
	if p, ok := c.parked[d.ID]; ok {
		if p.fetchAt.IsZero() {
			p.fetchAt = fetchAt
		}
		p.d = crdt.NewBatch(p.d, d).Get(d.ID)
		p.joined = true
		c.parked[d.ID] = p
	} else {
		if len(c.parked) >= maxGapFetches {
			c.sweepParked(now)
			if len(c.parked) >= maxGapFetches {
				return // anti-entropy brings the entries
			}
		}
		c.parked[d.ID] = parkedDelta{d: d, at: now, fetchAt: fetchAt}
	}
	if !fetchAt.IsZero() && (c.gapDue.IsZero() || fetchAt.Before(c.gapDue)) {
		c.gapDue = fetchAt
	}
}

// fetchGaps asks for the sessions whose parked deltas are due (park), in
// id order.
func (c *Core) fetchGaps(now time.Time) {
	c.gapDue = time.Time{}
	ids := make([]string, 0, len(c.parked))
	for id, p := range c.parked {
		if !p.fetchAt.IsZero() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := c.parked[id]
		if now.Before(p.fetchAt) {
			if c.gapDue.IsZero() || p.fetchAt.Before(c.gapDue) {
				c.gapDue = p.fetchAt
			}
			continue
		}
		p.fetchAt = c.repairGap(now, id, p.d)
		c.parked[id] = p
		if !p.fetchAt.IsZero() && (c.gapDue.IsZero() || p.fetchAt.Before(c.gapDue)) {
			c.gapDue = p.fetchAt
		}
	}
}

// sweepParked drops the parked deltas older than parkFor.
func (c *Core) sweepParked(now time.Time) {
	for id, p := range c.parked {
		if now.Sub(p.at) >= parkFor {
			delete(c.parked, id)
		}
	}
}
