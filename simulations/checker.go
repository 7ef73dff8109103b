package simulations

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cespare/xxhash/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
)

// The checkers judge the recorded history against what the mesh promises.
// They see only what clients could: acknowledged operations and what reads
// returned, plus the stores at the end. Everything they compare is in
// terms of the operations' own crdt timestamps and of the reading node's
// local clock, so clock faults do not make them cry wolf.

// Check names, as they appear in verdicts.
const (
	CheckConvergence    = "converge_within"
	CheckReconnect      = "reconnect_within"
	CheckLostWrites     = "lost_writes"
	CheckResurrections  = "resurrections"
	CheckExpiredServed  = "expired_served"
	CheckReadYourWrites = "read_your_writes_violations"
	CheckHolders        = "under_replicated"
	CheckUnsafeDrops    = "unsafe_drops"
	CheckStaleReads     = "stale_remote_reads"
)

// Violation is one example of a broken promise.
type Violation struct {
	Check   string   `json:"check"`
	T       Duration `json:"t"`
	Node    string   `json:"node,omitempty"`
	Session string   `json:"session,omitempty"`
	Detail  string   `json:"detail"`
}

// maxExamples bounds the violations kept per check.
const maxExamples = 20

type bitset [maxNodes / 64]uint64

// Node indexes are not negative: as unsigned, dividing and taking the
// remainder are a shift and a mask.
func (b *bitset) set(i int)      { b[uint(i)/64] |= 1 << (uint(i) % 64) }
func (b *bitset) clear(i int)    { b[uint(i)/64] &^= 1 << (uint(i) % 64) }
func (b *bitset) has(i int) bool { return b[uint(i)/64]&(1<<(uint(i)%64)) != 0 }
func (b *bitset) empty() bool    { return *b == bitset{} }
func (b *bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// nodeSet is a set of nodes as long as the run needs (a word up to 64
// nodes): a write's pending and covered nodes, two per write of a run.
type nodeSet []uint64

func (s nodeSet) set(i int)      { s[uint(i)/64] |= 1 << (uint(i) % 64) }
func (s nodeSet) clear(i int)    { s[uint(i)/64] &^= 1 << (uint(i) % 64) }
func (s nodeSet) has(i int) bool { return s[uint(i)/64]&(1<<(uint(i)%64)) != 0 }
func (s nodeSet) empty() bool {
	for _, w := range s {
		if w != 0 {
			return false
		}
	}
	return true
}

// meets reports whether s and b have a node in common.
func (s nodeSet) meets(b *bitset) bool {
	for i, w := range s {
		if w&b[i] != 0 {
			return true
		}
	}
	return false
}

// opSets keeps the pending and covered sets of every write, words long
// each, by the write's index in checker.ops: sized for the run's nodes
// rather than for maxNodes, they are a quarter of what a write record
// held.
type opSets struct {
	words  int
	chunks [][]uint64
	n      int
}

// add appends the sets of the next write.
func (s *opSets) add(pend, covered *bitset) {
	per := 2 * s.words
	if s.n%chunkLen == 0 {
		s.chunks = append(s.chunks, make([]uint64, 0, chunkLen*per))
	}
	last := &s.chunks[len(s.chunks)-1]
	*last = append(append(*last, pend[:s.words]...), covered[:s.words]...)
	s.n++
}

// pend returns the running nodes write i has not reached yet.
func (s *opSets) pend(i int32) nodeSet {
	off := int(uint32(i)%chunkLen) * 2 * s.words
	return nodeSet(s.chunks[uint32(i)/chunkLen][off : off+s.words : off+s.words])
}

// covered returns the nodes write i reached.
func (s *opSets) covered(i int32) nodeSet {
	off := (int(uint32(i)%chunkLen)*2 + 1) * s.words
	return nodeSet(s.chunks[uint32(i)/chunkLen][off : off+s.words : off+s.words])
}

// sessHist is everything acknowledged about one session.
type sessHist struct {
	id       string
	idx      int
	origin   int
	absolute int64 // ms: the latest deadline of any acknowledged write
	idle     int64 // ms
	maxLA    int64 // latest last access of any acknowledged operation
	created  bool
	seen     bitset // nodes that applied its tombstone
	views    []*view
	ops      []int32
	deltas   []*crdt.Session // every acknowledged delta, for re-merging
	pending  []int32         // ops still to reach some node
	busy     bool            // listed in checker.busy
	// lastOf is the last write of each field key written (a handful),
	// whose writeOp.prev chains the earlier ones: no allocation per write.
	lastOf []keyLast
}

// keyLast is the last write of a key, and the greatest field any write
// of it set (in crdt order: a write's field is not always the greatest).
type keyLast struct {
	key, last int32
	max       crdt.Field // timestamp and removal only
}

// keyLast returns the entry of key, nil if none was written.
func (h *sessHist) keyLast(key int32) *keyLast {
	for k := range h.lastOf {
		if h.lastOf[k].key == key {
			return &h.lastOf[k]
		}
	}
	return nil
}

// lastWrite returns the last write of key, -1 if none.
func (h *sessHist) lastWrite(key int32) int32 {
	if kl := h.keyLast(key); kl != nil {
		return kl.last
	}
	return -1
}

// setLastWrite makes write i, of field f, the last of key; keys is how
// many the workload writes (the room to make at the first).
func (h *sessHist) setLastWrite(key, i int32, f crdt.Field, keys int) {
	if kl := h.keyLast(key); kl != nil {
		kl.last = i
		if f.Compare(kl.max) > 0 {
			kl.max = f
		}
		return
	}
	if h.lastOf == nil {
		h.lastOf = make([]keyLast, 0, min(max(keys, 1), 16))
	}
	h.lastOf = append(h.lastOf, keyLast{key, i, f})
}

// view is what one node wrote to a session: read-your-writes holds it to
// that.
type view struct {
	node int
	keys viewKeys
	la   int64
	lazy int64 // latest lazy touch, lost at a crash
	// first is the node's local time (ms) at its first write: a read
	// that began before it owes the node nothing (remote reads take a
	// round trip, and a write may be acknowledged meanwhile).
	first int64
	abs   int64 // latest deadline this node wrote
}

// viewKeys are the fields a node wrote, sorted by key: a handful, which a
// slice holds and walks faster than a map (read on every read, in step
// with the session's own fields).
type viewKeys []viewKey

type viewKey struct {
	k string
	f crdt.Field
}

func (h *sessHist) view(n int) *view {
	for _, v := range h.views {
		if v.node == n {
			return v
		}
	}
	return nil
}

// writeOp is one acknowledged write: a create, a field set or removal, a
// touch or a destroy. A run keeps hundreds of thousands of them, so it
// holds no pointer (the garbage collector need not scan them) and its key
// is interned (checker.keys).
type writeOp struct {
	node    int
	at      int64
	la      int64
	vh      uint64         // hash of the value
	ts      crdt.Timestamp // of the field, create or destroy
	key     int32          // index in checker.keys; 0: no key
	prev    int32          // the session's previous write of key (-1: none)
	kind    opKind
	removed bool
	mayLose bool // acknowledged under durability none just before a power loss
	// Its pending and covered nodes are in checker.sets.
}

// field is the write as a crdt field without its value.
func (op *writeOp) field() crdt.Field { return crdt.Field{Removed: op.removed, TS: op.ts} }

type checker struct {
	e    *engine
	byID map[string]*sessHist
	// recentIDs remembers the sessions of recent byID lookups (every remote
	// change looks one up).
	recentIDs recent[*sessHist]
	// busy lists the sessions that may have pending writes, each once
	// (sessHist.busy): a sample sweeps them, not every session.
	busy     []*sessHist
	sessions []*sessHist
	ops      chunkLog[writeOp]
	sets     opSets           // of ops, by index
	keys     []string         // interned field keys; keys[0] is ""
	keyIDs   map[string]int32 // index in keys

	pendingPairs int64
	silent       int64 // pairs found held by sweep, not by a change event

	// Convergence after a heal with traffic going on: when the last
	// (write acknowledged before the heal, node) pair was covered, and
	// whether sweep found some (when they arrived is then unknown).
	healing  bool
	healLast int64
	lags     chunkLog[int64] // true time (ns) from ack to reaching a node

	resurrected map[string]bool
	expired     int64
	ryw         int64
	lost        int64
	stranded    int64
	examples    map[string][]Violation

	deferred         []map[string]deferredDelta // per node
	strandedDeferred int64
	mergeViolations  int64
	keepDeltas       bool // merge determinism is judged: keep every delta
	allowedLost      int64
}

func newChecker(e *engine) *checker {
	return &checker{e: e, sets: opSets{words: max(1, (len(e.nodes)+63)/64)}, byID: map[string]*sessHist{}, resurrected: map[string]bool{}, examples: map[string][]Violation{},
		keys: []string{""}, keyIDs: map[string]int32{}, keepDeltas: e.sc.Expect.MergeDeterminism != nil}
}

// keyID interns a field key.
func (c *checker) keyID(k string) int32 {
	id, ok := c.keyIDs[k]
	if !ok {
		id = int32(len(c.keys))
		c.keys = append(c.keys, k)
		c.keyIDs[k] = id
	}
	return id
}

func (c *checker) violation(check string, n *simNode, id, format string, args ...any) {
	if len(c.examples[check]) >= maxExamples {
		return
	}
	v := Violation{Check: check, T: Duration(c.e.now), Session: id, Detail: fmt.Sprintf(format, args...)}
	if n != nil {
		v.Node = n.name
	}
	c.examples[check] = append(c.examples[check], v)
	c.e.record(TraceEvent{Kind: "violation", Fault: check, Node: v.Node, Session: id, Detail: v.Detail})
}

// session returns a history for a new session id (registered at its first
// acknowledged write).
func (c *checker) session(id string, origin int) *sessHist {
	if h, ok := c.byID[id]; ok {
		return h
	}
	return &sessHist{id: id, origin: origin, idx: -1}
}

// add records write op of node n to session h.
func (c *checker) add(n *simNode, h *sessHist, op writeOp) {
	op.node, op.at = n.idx, c.e.now
	// A node that already holds the session's tombstone, or a newer write
	// of the same field, holds this write's effect already: its merge will
	// report no change, so coverage would never move.
	var already, pend bitset
	if op.kind != opDestroy {
		already = h.seen
	}
	op.prev = -1
	var kl *keyLast
	if op.key != 0 {
		kl = h.keyLast(op.key)
	}
	if kl != nil {
		op.prev = kl.last
	}
	// Unless an earlier write of the key is newer (rare: the greatest
	// field written says), none is: its writes need no look.
	if kl != nil && kl.max.Compare(op.field()) > 0 {
		// The last few suffice: a newer write is recent.
		for j, k := op.prev, 0; j >= 0 && k < 4; k++ {
			w := c.ops.at(int(j))
			if w.field().Compare(op.field()) > 0 {
				for b, x := range c.sets.covered(j) {
					already[b] |= x
				}
			}
			j = w.prev
		}
	}
	for j, m := range c.e.nodes {
		if j != n.idx && m.up && !already.has(j) && c.e.holds(m, h.id) {
			pend.set(j)
		}
	}
	covered := already
	covered.set(n.idx)
	c.pendingPairs += int64(pend.count())
	i := int32(c.ops.add(op))
	c.sets.add(&pend, &covered)
	if h.ops == nil {
		h.ops = make([]int32, 0, 8) // a session takes about as many writes
	}
	h.ops = append(h.ops, i)
	if !pend.empty() {
		c.addPending(h, i)
	}
	if op.key != 0 {
		h.setLastWrite(op.key, i, op.field(), c.e.sc.Workload.Keys)
	}
}

// ack records an acknowledged local write by node n of delta d.
func (c *checker) ack(n *simNode, kind opKind, h *sessHist, d *crdt.Session) {
	if h.idx < 0 {
		h.idx = len(c.sessions)
		c.sessions = append(c.sessions, h)
		c.byID[h.id] = h
	}
	v := h.view(n.idx)
	if v == nil {
		v = &view{node: n.idx, first: c.e.localTime(n).UnixMilli()}
		h.views = append(h.views, v)
	}
	if c.keepDeltas {
		h.deltas = append(h.deltas, d.Clone())
	}
	h.maxLA = max(h.maxLA, d.LastAccess)
	v.la = max(v.la, d.LastAccess)
	h.absolute = max(h.absolute, d.Absolute)
	v.abs = max(v.abs, d.Absolute)
	if !d.Created.IsZero() {
		h.created = true
		h.idle = d.Idle
		c.add(n, h, writeOp{kind: opCreate, ts: d.Created, la: d.LastAccess})
	}
	// The delta's fields and the node's own come in key order: one walk
	// through both.
	j := 0
	for k, f := range d.Fields.All() {
		for j < len(v.keys) && v.keys[j].k < k {
			j++
		}
		if j < len(v.keys) && v.keys[j].k == k && v.keys[j].f.TS == f.TS && v.keys[j].f.Removed == f.Removed {
			// A write carries its writer's whole state: a field this
			// node already wrote is not a new write.
			j++
			continue
		}
		op := writeOp{kind: opSet, key: c.keyID(k), vh: xxhash.Sum64String(f.Value), ts: f.TS, removed: f.Removed}
		if f.Removed {
			op.kind = opRemove
		}
		c.add(n, h, op)
		if j < len(v.keys) && v.keys[j].k == k {
			v.keys[j].f = op.field()
		} else {
			if v.keys == nil {
				v.keys = make(viewKeys, 0, min(max(c.e.sc.Workload.Keys, 1), 4))
			}
			v.keys = slices.Insert(v.keys, j, viewKey{c.keys[op.key], op.field()})
		}
		j++
	}
	switch kind {
	case opTouch:
		c.add(n, h, writeOp{kind: opTouch, la: d.LastAccess})
	}
	if d.IsDestroyed() {
		c.add(n, h, writeOp{kind: opDestroy, ts: d.Destroyed})
		h.seen.set(n.idx)
	}
	c.cover(h, n)
}

// lazyTouch follows a touch that node n kept to itself: it may serve the
// session until ms + idle, and read-your-writes holds it to that until it
// crashes.
func (c *checker) lazyTouch(n *simNode, h *sessHist, ms int64) {
	h.maxLA = max(h.maxLA, ms)
	v := h.view(n.idx)
	if v == nil {
		v = &view{node: n.idx}
		h.views = append(h.views, v)
	}
	v.lazy = max(v.lazy, ms)
}

// change follows a remote change applied on node n.
func (c *checker) change(n *simNode, ch *node.Change) {
	h, ok := c.recentIDs.get(ch.ID)
	if !ok {
		if h, ok = c.byID[ch.ID]; !ok {
			return
		}
		c.recentIDs.put(h.id, h)
	}
	if ch.Destroyed {
		h.seen.set(n.idx)
	}
	if ch.Created && h.seen.has(n.idx) && !c.resurrected[h.id] {
		// The node had applied the destroy, forgot the tombstone (or
		// never kept it), and now holds a live copy again.
		if st, err := n.store.Get(h.id); err == nil && st.Visible(c.e.localTime(n)) {
			c.resurrected[h.id] = true
			c.violation(CheckResurrections, n, h.id, "live again in the store of a node that had applied its destroy (from %s)", ch.From)
		}
	}
	c.cover(h, n)
}

// cover marks the pending writes of h that node n's state now holds (or
// supersedes), recording how long they took to get there.
func (c *checker) cover(h *sessHist, n *simNode) {
	// The state is read once a pending write is pending on n (a fifth of
	// the calls find none).
	var st *crdt.Session
	for x, i := range h.pending {
		if c.sets.pend(i).has(n.idx) {
			var err error
			if st, err = n.store.Get(h.id); err != nil {
				return
			}
			h.pending = c.coverFrom(h, n, st, x)
			return
		}
	}
}

// coverFrom is cover from h.pending[x] on, with n's state st; it returns
// what stays pending.
func (c *checker) coverFrom(h *sessHist, n *simNode, st *crdt.Session, x int) []int32 {
	keep := h.pending[:x]
	for _, i := range h.pending[x:] {
		op, pend := c.ops.at(int(i)), c.sets.pend(i)
		if pend.has(n.idx) && c.covers(st, op) {
			pend.clear(n.idx)
			c.sets.covered(i).set(n.idx)
			c.coveredPair(op)
			c.lags.add(c.e.now - op.at)
		}
		if !pend.empty() {
			keep = append(keep, i)
		}
	}
	return keep
}

// addPending lists write i as pending in session h, and h as busy.
func (c *checker) addPending(h *sessHist, i int32) {
	if !h.busy {
		h.busy = true
		c.busy = append(c.busy, h)
	}
	h.pending = append(h.pending, i)
}

// sweep looks at every still pending (write, running node) pair in the
// node's store: a merge that changed nothing (a write arriving after a
// newer one, or after the tombstone) reports no change event, so cover
// never ran for it. Pairs found held are cleared without a lag (when they
// arrived is unknown); it returns how many.
func (c *checker) sweep() int64 {
	var cleared int64
	// Only the sessions listed busy have pending writes; those left with
	// none leave the list. (Their order does not matter: a sweep updates
	// counts.)
	busy := c.busy[:0]
	for _, h := range c.busy {
		cleared += c.sweepSession(h)
		if len(h.pending) > 0 {
			busy = append(busy, h)
		} else {
			h.busy = false
		}
	}
	clear(c.busy[len(busy):])
	c.busy = busy
	c.silent += cleared
	return cleared
}

// sweepSession is sweep for session h.
func (c *checker) sweepSession(h *sessHist) int64 {
	var cleared int64
	if len(h.pending) == 0 {
		return 0
	}
	for _, n := range c.e.nodes {
		if !n.up {
			continue
		}
		// Expired there: it may be collected, and its replication no
		// longer matters (nor is it looked at again). Likewise where
		// partial replication does not place it (any more).
		expired := c.gone(h, c.e.localTime(n)) || !c.e.holds(n, h.id)
		var st *crdt.Session
		keep := h.pending[:0]
		for _, i := range h.pending {
			op, pend := c.ops.at(int(i)), c.sets.pend(i)
			if pend.has(n.idx) && expired {
				pend.clear(n.idx)
				c.pendingPairs--
			} else if pend.has(n.idx) {
				if st == nil {
					var err error
					if st, err = n.store.Get(h.id); err != nil {
						st = &crdt.Session{} // missing: covers nothing
					}
				}
				if c.covers(st, op) {
					pend.clear(n.idx)
					c.sets.covered(i).set(n.idx)
					c.coveredPair(op)
					cleared++
				}
			}
			if !pend.empty() {
				keep = append(keep, i)
			}
		}
		h.pending = keep
	}
	return cleared
}

// unreplicated counts the (write, running node) pairs still pending.
func (c *checker) unreplicated() int64 {
	var n int64
	live := c.running()
	for _, h := range c.sessions {
		for _, i := range h.pending {
			if !c.counted(i, &live) {
				continue // a power loss took it, or only stopped nodes hold it
			}
			var p bitset
			for b, x := range c.sets.pend(i) {
				p[b] = x & live[b]
			}
			for _, m := range c.e.nodes {
				if p.has(m.idx) && (c.expiredAt(h, m) || !c.e.holds(m, h.id)) {
					p.clear(m.idx)
				}
			}
			n += int64(p.count())
		}
	}
	return n
}

// expiredAt reports whether h has expired by node n's clock (so its
// replication no longer matters: it may have been collected).
func (c *checker) expiredAt(h *sessHist, n *simNode) bool {
	return c.gone(h, c.e.localTime(n))
}

// healed starts following the pairs pending at the last heal.
func (c *checker) healed() {
	c.sweep()
	c.healing = true
	c.healLast = c.e.now
}

// coveredPair notes that op reached one more node.
func (c *checker) coveredPair(op *writeOp) {
	c.pendingPairs--
	if !c.healing || op.at > c.e.heal || op.mayLose {
		return // a write a power loss may lose is not waited for
	}
	// A pair found by sweep arrived at the latest now: an upper bound,
	// within one sample period.
	c.healLast = c.e.now
}

// healConverged returns when every write acknowledged before the heal had
// reached every node running at the end, and false if one has not (or
// when is unknown). Writes that no running node could get (stranded, or
// taken by a power loss) are not waited for.
func (c *checker) healConverged() (int64, bool) {
	if !c.healing {
		return 0, false
	}
	live := c.running()
	for _, h := range c.sessions {
		for _, i := range h.pending {
			// A write only stopped nodes hold is stranded (reported
			// apart): no running node can get it.
			if op := c.ops.at(int(i)); op.at > c.e.heal || !c.counted(i, &live) {
				continue
			}
			for _, n := range c.e.nodes {
				if n.up && c.sets.pend(i).has(n.idx) && !c.expiredAt(h, n) && c.e.holds(n, h.id) {
					return 0, false
				}
			}
		}
	}
	return c.healLast, true
}

// covers reports whether state st holds op or something that supersedes it.
func (c *checker) covers(st *crdt.Session, op *writeOp) bool {
	if st.IsDestroyed() {
		return true
	}
	switch op.kind {
	case opCreate:
		return !st.Created.IsZero()
	case opSet, opRemove:
		f, ok := st.Fields.Get(c.keys[op.key])
		return ok && f.Compare(op.field()) >= 0
	case opTouch:
		return st.LastAccess >= op.la
	}
	return false
}

// read checks what an operation on node n read at local time now: cur is
// the visible session, nil when not found.
func (c *checker) read(n *simNode, h *sessHist, cur *crdt.Session, now time.Time) {
	c.readSince(n, h, cur, now, 0, false)
}

// readSince is read for a read that began at local time since (ms; 0:
// at now): read-your-writes holds it only to the writes the node made
// before it began, and it serves a destroyed session only if the node had
// applied the destroy when it began (seenBefore).
func (c *checker) readSince(n *simNode, h *sessHist, cur *crdt.Session, now time.Time, since int64, seenBefore bool) {
	ms := now.UnixMilli()
	v := h.view(n.idx)
	if v != nil && since > 0 && v.first >= since {
		v = nil // every write of the node's came after the read began
	}
	if cur != nil {
		if h.seen.has(n.idx) && (since == 0 || seenBefore) {
			if !c.resurrected[h.id] {
				c.resurrected[h.id] = true
				c.violation(CheckResurrections, n, h.id, "served after this node applied its destroy")
			}
		}
		if ms >= h.absolute || ms >= h.maxLA+h.idle {
			c.expired++
			c.violation(CheckExpiredServed, n, h.id, "served at local %s; deadline %s, last access %s + idle %v",
				fmtMs(ms), fmtMs(h.absolute), fmtMs(h.maxLA), time.Duration(h.idle)*time.Millisecond)
		}
		if v != nil {
			c.readOwn(n, h, v, cur, since)
		}
		return
	}
	if v != nil && !h.seen.has(n.idx) && ms < v.abs && ms < max(v.la, v.lazy)+h.idle {
		c.ryw++
		c.violation(CheckReadYourWrites, n, h.id, "not found by the node that wrote it, neither destroyed nor expired there")
	}
}

// readOwn checks that cur holds every field node n wrote (view v), or
// something newer.
func (c *checker) readOwn(n *simNode, h *sessHist, v *view, cur *crdt.Session, since int64) {
	// In key order: a violation names the first key behind.
	for _, w := range v.keys {
		if since > 0 && int64(w.f.TS.Time) >= since {
			continue // written after the read began
		}
		if f, ok := cur.Fields.Get(w.k); !ok || f.Compare(w.f) < 0 {
			c.ryw++
			c.violation(CheckReadYourWrites, n, h.id, "field %s: read %s, this node wrote %s", w.k, fieldString(f, ok), w.f.TS)
			return
		}
	}
}

func fieldString(f crdt.Field, ok bool) string {
	if !ok {
		return "nothing"
	}
	if f.Removed {
		return "removal@" + f.TS.String()
	}
	return "value@" + f.TS.String()
}

// fmtMs prints a local time in Unix milliseconds as the time since the
// run's epoch ("1m2.345s").
func fmtMs(ms int64) string {
	return (time.Duration(ms-epoch.UnixMilli()) * time.Millisecond).String()
}

// gone reports whether the clients should give up on h at local time now:
// it has expired as far as anyone knows. (Clients retire destroyed sessions
// themselves, after Workload.Linger.)
func (c *checker) gone(h *sessHist, now time.Time) bool {
	ms := now.UnixMilli()
	return ms >= h.absolute || ms >= h.maxLA+h.idle
}

// running returns the nodes running now.
func (c *checker) running() (live bitset) {
	for _, n := range c.e.nodes {
		if n.up {
			live.set(n.idx)
		}
	}
	return live
}

// counted reports whether write i must be in the stores of the running
// nodes live: not lost to a power loss, and its writer or a node it
// reached is running.
func (c *checker) counted(i int32, live *bitset) bool {
	op := c.ops.at(int(i))
	return !op.mayLose && (live.has(op.node) || c.sets.covered(i).meets(live))
}

// final checks every live node's store at the end of the run: writes
// acknowledged and not superseded must be there, destroyed sessions must
// stay destroyed. Each node's store is read by a goroutine of its own
// (finalNode, which only reads); what they find is then judged in the
// order of sessions, then nodes, as one loop over both would.
func (c *checker) final() {
	e := c.e
	live, counted, stranded := c.countedWrites()
	c.stranded += stranded
	if e.part != nil {
		e.placement() // made now: the goroutines only read it
	}
	// A block of sessions at a time, gathered once for every node's look
	// (judged), in one buffer: a run's writes gathered at once would be a
	// last allocation as large as the log.
	found := make([][]finding, len(e.nodes))
	var j judgedWrites
	for k := 0; k < len(c.sessions); k = j.end {
		c.judged(&j, counted, k, judgedBlock)
		var wg sync.WaitGroup
		for _, n := range e.nodes {
			if n.up {
				wg.Go(func() { found[n.idx] = c.finalNode(found[n.idx], n, &j) })
			}
		}
		wg.Wait()
	}
	lost := map[int32]bool{}
	next := make([]int, len(e.nodes))
	for k, h := range c.sessions {
		for _, n := range e.nodes {
			fs := found[n.idx]
			for ; next[n.idx] < len(fs) && fs[next[n.idx]].session == k; next[n.idx]++ {
				f := &fs[next[n.idx]]
				if f.op < 0 {
					if !c.resurrected[h.id] {
						c.resurrected[h.id] = true
						c.violation(CheckResurrections, n, h.id, "%s", f.why)
					}
				} else if !lost[f.op] {
					lost[f.op] = true
					op := c.ops.at(int(f.op))
					c.violation(CheckLostWrites, n, h.id, "%s by %s at %v: %s", c.describe(op), e.nodes[op.node].name, time.Duration(op.at), f.why)
				}
			}
		}
	}
	c.lost = int64(len(lost))
	if e.part != nil {
		c.finalHolders(&live)
	}
}

// countedWrites returns the running nodes, whether each write counts
// (checker.counted, by index: it does not depend on the node looking) and
// how many do not though no power loss took them (stranded).
func (c *checker) countedWrites() (live bitset, counted []bool, stranded int64) {
	live = c.running()
	counted = make([]bool, c.ops.len())
	for i := range int32(c.ops.len()) {
		counted[i] = c.counted(i, &live)
		if op := c.ops.at(int(i)); !counted[i] && !op.mayLose {
			stranded++
		}
	}
	return live, counted, stranded
}

// judgedWrites are the writes final judges, gathered once for every
// node's look: the writes of sessions first to end-1, each session's in
// its order, side by side, as much of each as a look reads. The log keeps
// a session's writes apart, among everybody's, so a look that went
// through it would miss the cache at nearly every write, and every node
// looks at all of them.
type judgedWrites struct {
	first, end int
	ops        []judgedOp
	// Session first+k's writes are ops[start[k]:start[k+1]]; destroyed[k]
	// says whether a counted destroy ended it, absolute[k] is its
	// deadline.
	start     []int
	destroyed []bool
	absolute  []int64
}

// judgedBlock is about how many writes judgedWrites holds at a time.
const judgedBlock = 1 << 14

// judgedOp is a writeOp as missing reads it.
type judgedOp struct {
	ts crdt.Timestamp
	// x is the write's vh (a set or a removal) or la (the others).
	x       uint64
	i       int32 // in checker.ops
	key     int32
	kind    opKind
	removed bool
	counted bool // checker.counted
}

func (op *writeOp) judged(i int32, counted bool) judgedOp {
	j := judgedOp{ts: op.ts, x: uint64(op.la), i: i, key: op.key, kind: op.kind, removed: op.removed, counted: counted}
	if op.kind == opSet || op.kind == opRemove {
		j.x = op.vh
	}
	return j
}

func (op *judgedOp) field() crdt.Field { return crdt.Field{Removed: op.removed, TS: op.ts} }

// judged gathers into j the writes of sessions from first on, until
// it holds about max of them (counted: checker.counted, by index).
func (c *checker) judged(j *judgedWrites, counted []bool, first, max int) {
	if j.ops == nil {
		j.ops = make([]judgedOp, 0, max+max/4)
	}
	j.first, j.ops, j.start, j.destroyed, j.absolute = first, j.ops[:0], j.start[:0], j.destroyed[:0], j.absolute[:0]
	k := first
	for ; k < len(c.sessions) && len(j.ops) < max; k++ {
		h := c.sessions[k]
		j.start, j.absolute = append(j.start, len(j.ops)), append(j.absolute, h.absolute)
		destroyed := false
		for _, i := range h.ops {
			op := c.ops.at(int(i))
			if op.kind == opDestroy && counted[i] {
				destroyed = true
			}
			j.ops = append(j.ops, op.judged(i, counted[i]))
		}
		j.destroyed = append(j.destroyed, destroyed)
	}
	j.end = k
	j.start = append(j.start, len(j.ops))
}

// finding is what final found wrong with a session on a node: write op
// lost, or (op -1) the session visible though destroyed; why says how.
type finding struct {
	session int // index in checker.sessions
	op      int32
	why     string
}

// finalNode is final's look at node n's store, session by session, at
// the sessions j holds (checker.judged), appending what it finds to out:
// it reads the checker's records and the store, and changes neither.
func (c *checker) finalNode(out []finding, n *simNode, j *judgedWrites) []finding {
	e := c.e
	now := e.localTime(n)
	ms := now.UnixMilli()
	var look stateLook
	for b, abs := range j.absolute {
		if ms >= abs {
			continue // past its deadline: collected or about to be
		}
		k := j.first + b
		h, destroyed := c.sessions[k], j.destroyed[b]
		if !e.holds(n, h.id) {
			// Partial replication: a node that does not hold the session
			// owes none of its writes (finalHolders counts the holders),
			// but must not serve it after its destroy.
			if st, err := n.store.Get(h.id); err == nil && destroyed && st.Visible(now) {
				out = append(out, finding{k, -1, "visible at the end though destroyed"})
			}
			continue
		}
		from, to := j.start[b], j.start[b+1]
		st, err := n.store.Get(h.id)
		if err != nil {
			st = nil
		}
		lose := func(why string) {
			for x := from; x < to; x++ {
				if j.ops[x].counted {
					out = append(out, finding{k, j.ops[x].i, why})
				}
			}
		}
		switch {
		case st == nil:
			lose("session missing")
		case st.IsDestroyed():
			if !destroyed {
				lose("session destroyed though no destroy was acknowledged")
			}
		default:
			if destroyed && st.Visible(now) {
				out = append(out, finding{k, -1, "visible at the end though destroyed"})
			}
			look.reset(h, st, j.ops[from:to])
			for x := from; x < to; x++ {
				if !j.ops[x].counted {
					continue
				}
				if why := c.missingIn(&look, &j.ops[x]); why != "" {
					out = append(out, finding{k, j.ops[x].i, why})
				}
			}
		}
	}
	return out
}

// stateLook is a session's state as missing reads it, key by key: what
// it holds of each key, its value's hash and whether a client wrote it
// are looked up once for all the writes judged against the state.
type stateLook struct {
	h  *sessHist
	st *crdt.Session
	// writes are h's writes, when at hand (judgedWrites): whether a
	// client wrote a field is then read there rather than in the log.
	writes []judgedOp
	keys   []keyLook
}

type keyLook struct {
	key     int32
	f       crdt.Field
	ok      bool
	hashed  bool
	vh      uint64 // of f's value
	sought  bool
	written bool // some client wrote f
}

func (l *stateLook) reset(h *sessHist, st *crdt.Session, writes []judgedOp) {
	l.h, l.st, l.writes, l.keys = h, st, writes, l.keys[:0]
}

// key returns what the state holds of key.
func (l *stateLook) key(c *checker, key int32) *keyLook {
	for i := range l.keys {
		if l.keys[i].key == key {
			return &l.keys[i]
		}
	}
	f, ok := l.st.Fields.Get(c.keys[key])
	l.keys = append(l.keys, keyLook{key: key, f: f, ok: ok})
	return &l.keys[len(l.keys)-1]
}

func (k *keyLook) hash() uint64 {
	if !k.hashed {
		k.vh, k.hashed = xxhash.Sum64String(k.f.Value), true
	}
	return k.vh
}

// missing says why a live state st lacks op, or "" if it holds it.
func (c *checker) missing(h *sessHist, st *crdt.Session, op *writeOp) string {
	l := stateLook{h: h, st: st}
	j := op.judged(-1, true)
	return c.missingIn(&l, &j)
}

// missingIn is missing against the state l looks at.
func (c *checker) missingIn(l *stateLook, op *judgedOp) string {
	st := l.st
	switch op.kind {
	case opCreate:
		if st.Created.IsZero() || st.Created.Compare(op.ts) < 0 {
			return "create missing"
		}
	case opTouch:
		if la := int64(op.x); st.LastAccess < la {
			return fmt.Sprintf("last access %s behind %s", fmtMs(st.LastAccess), fmtMs(la))
		}
	case opDestroy:
		return "destroy missing: the session is live"
	case opSet, opRemove:
		k := l.key(c, op.key)
		if !k.ok {
			return "field missing"
		}
		f := k.f
		if f.TS == op.ts && f.Removed == op.removed {
			if !f.Removed && k.hash() != op.x {
				return "field holds another value under the write's timestamp"
			}
			return ""
		}
		// crdt order: time, then a removal beats a value, then node id.
		if f.Compare(op.field()) < 0 {
			return "older " + fieldString(f, true) + " kept"
		}
		// Superseded: by a write somebody made, or the state is wrong.
		if !k.sought {
			k.written, k.sought = c.wrote(l, op.key, f, k.hash()), true
		}
		if !k.written {
			return "superseded by " + fieldString(f, true) + ", which no client wrote"
		}
	}
	return ""
}

// wrote reports whether a client wrote f to key of l's session (vh
// hashes f's value).
func (c *checker) wrote(l *stateLook, key int32, f crdt.Field, vh uint64) bool {
	is := func(ts crdt.Timestamp, removed bool, wvh uint64) bool {
		return ts == f.TS && removed == f.Removed && (f.Removed || wvh == vh)
	}
	if l.writes != nil {
		for x := range l.writes {
			if w := &l.writes[x]; w.key == key && is(w.ts, w.removed, w.x) {
				return true
			}
		}
		return false
	}
	for j := l.h.lastWrite(key); j >= 0; {
		w := c.ops.at(int(j))
		if is(w.ts, w.removed, w.vh) {
			return true
		}
		j = w.prev
	}
	return false
}

// printableKey is a field key as a message shows it: quoted when it holds
// what a terminal or a page would not show (the node's version entries
// start with a NUL byte).
func printableKey(k string) string {
	if strings.IndexFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(k)
	}
	return k
}

func (c *checker) describe(op *writeOp) string {
	switch op.kind {
	case opSet, opRemove:
		return fmt.Sprintf("%s %s@%s", op.kind, printableKey(c.keys[op.key]), op.ts)
	case opTouch:
		return fmt.Sprintf("touch to %s", fmtMs(op.la))
	}
	return fmt.Sprintf("%s@%s", op.kind, op.ts)
}
