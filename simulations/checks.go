package simulations

import (
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// More checkers: merge determinism, deferred queues, what a power loss may
// lose, and divergence during faults.

// Check names of these checkers.
const (
	CheckMergeDeterminism = "merge_determinism"
	CheckDeferred         = "deferred_stranded"
)

// mergeOrders is how many seeded orders every session's deltas are
// re-merged in.
const mergeOrders = 2

// deferredSlack is how long (in the node's local time, counted from when
// the delta became admissible or the clock was last stepped, whichever is
// later) after a deferred delta became admissible its
// node may take to apply it: the core retries its deferred deltas every
// second.
const deferredSlack = 2 * time.Second

type deferredDelta struct {
	admissible int64 // local ms from which the drift bound admits it
	d          *crdt.Session
}

// deferrals follows the deltas node n's store deferred (stamped beyond the
// drift bound) until they are applied, refused or superseded: one applied
// long after it became admissible sat stranded in a deferred queue (or was
// dropped from a full one and repaired by anti-entropy).
func (c *checker) deferrals(n *simNode, b *crdt.Batch, res persist.Result, now time.Time) {
	if c.deferred == nil {
		c.deferred = make([]map[string]deferredDelta, len(c.e.nodes))
	}
	m := c.deferred[n.idx]
	if len(res.Deferred) == 0 && len(m) == 0 {
		return
	}
	if m == nil {
		m = map[string]deferredDelta{}
		c.deferred[n.idx] = m
	}
	held := make(map[string]bool, len(res.Deferred))
	for _, d := range res.Deferred {
		held[d.ID] = true
		// The core keeps one delta per session: a newer one deferred
		// meanwhile is merged into it, and the whole waits for its newest
		// part.
		adm := d.MaxMillis() - c.e.cfg.MaxDrift.Milliseconds()
		if dd, ok := m[d.ID]; ok {
			adm = max(adm, dd.admissible)
		}
		m[d.ID] = deferredDelta{admissible: adm, d: d}
	}
	if len(m) == 0 {
		return
	}
	ms := now.UnixMilli()
	for _, s := range b.Sessions() {
		dd, ok := m[s.ID]
		if !ok || held[s.ID] {
			continue
		}
		delete(m, s.ID)
		if late := ms - max(dd.admissible, n.clockSetMs); late > deferredSlack.Milliseconds() {
			c.strandedDeferred++
			c.violation(CheckDeferred, n, s.ID, "a deferred delta was applied %v after the drift bound admitted it (the core retries every second)", time.Duration(late)*time.Millisecond)
		}
	}
}

// finalDeferrals counts the deferred deltas still held at the end though
// admissible for long.
func (c *checker) finalDeferrals() {
	for i, m := range c.deferred {
		n := c.e.nodes[i]
		if !n.up {
			continue
		}
		ms := c.e.localTime(n).UnixMilli()
		for id, dd := range m {
			if late := ms - max(dd.admissible, n.clockSetMs); late > deferredSlack.Milliseconds() {
				c.strandedDeferred++
				c.violation(CheckDeferred, n, id, "a deferred delta admissible for %v was still not applied at the end", time.Duration(late)*time.Millisecond)
			}
		}
	}
}

// crashed forgets node n's deferred deltas and lazy touches: the core
// held them in memory.
func (c *checker) crashed(n *simNode) {
	if c.deferred != nil {
		c.deferred[n.idx] = nil
	}
	for _, h := range c.sessions {
		if v := h.view(n.idx); v != nil {
			v.lazy = 0
		}
	}
}

// powerLost allows the writes node n acknowledged after its last fsync
// (true time synced) and no other node held: exactly what durability none
// may lose in a power loss. What n served its clients before is forgotten
// with them (read-your-writes), and so are the tombstones it lost.
func (c *checker) powerLost(n *simNode, synced int64) {
	c.sweep()
	for _, h := range c.sessions {
		lostHere := false
		for _, i := range h.ops {
			op := c.ops.at(int(i))
			if op.node != n.idx || op.at <= synced {
				continue
			}
			var others bitset
			copy(others[:], c.sets.covered(i))
			others.clear(n.idx)
			if others.empty() {
				op.mayLose = true
				c.allowedLost++
			}
			lostHere = true
		}
		if lostHere {
			for k, v := range h.views {
				if v.node == n.idx {
					h.views = append(h.views[:k], h.views[k+1:]...)
					break
				}
			}
		}
		if h.seen.has(n.idx) {
			if st, err := n.store.Get(h.id); err != nil || !st.IsDestroyed() {
				h.seen.clear(n.idx)
			}
		}
		// What n held of others' writes is gone from it: pending again.
		for _, i := range h.ops {
			op := c.ops.at(int(i))
			if covered := c.sets.covered(i); op.node != n.idx && covered.has(n.idx) {
				if st, err := n.store.Get(h.id); err != nil || !c.covers(st, op) {
					covered.clear(n.idx)
					if pend := c.sets.pend(i); !pend.has(n.idx) {
						pend.set(n.idx)
						c.pendingPairs++
						if len(h.pending) == 0 || h.pending[len(h.pending)-1] != i {
							c.addPending(h, i)
						}
					}
				}
			}
		}
	}
}

// mergeDeterminism (run when the scenario expects merge_determinism: it
// keeps every delta of the run) re-merges every session's acknowledged
// deltas in
// several seeded orders: the results must agree with each other and, when
// the mesh converged, with every live replica. Tie probes merge pairs of
// the run's deltas with their timestamps made equal, both ways round: a
// merge that lets arrival order break a tie is caught whether or not the
// run happened to produce one.
func (c *checker) mergeDeterminism() {
	if !c.keepDeltas {
		return
	}
	e := c.e
	rng := e.stream(streamMerge)
	converged := e.convergedAt >= 0
	var live bitset
	for _, n := range e.nodes {
		if n.up {
			live.set(n.idx)
		}
	}
	join := func(id string, ds []*crdt.Session) *crdt.Session {
		acc := &crdt.Session{ID: id}
		for _, d := range ds {
			_, _ = acc.Merge(unguarded(d))
		}
		return acc
	}
	for _, h := range c.sessions {
		if len(h.deltas) == 0 {
			continue
		}
		skip := false
		for _, i := range h.ops {
			if !c.counted(i, &live) {
				skip = true // may be missing from replicas for a good reason
			}
		}
		for _, n := range e.nodes {
			if n.up && c.gone(h, e.localTime(n)) {
				skip = true // collected, or about to be
			}
		}
		ref := join(h.id, h.deltas)
		order := make([]*crdt.Session, len(h.deltas))
		for range mergeOrders - 1 {
			if len(h.deltas) < 2 {
				break
			}
			copy(order, h.deltas)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			if got := join(h.id, order); !got.Equal(ref) {
				c.mergeViolations++
				c.violation(CheckMergeDeterminism, nil, h.id, "its %d deltas merged in two orders give different sessions", len(h.deltas))
				break
			}
		}
		c.tieProbes(h)
		if !converged || skip {
			continue
		}
		for _, n := range e.nodes {
			if !n.up || !e.holds(n, h.id) {
				continue
			}
			st, err := n.store.Get(h.id)
			if err != nil || !st.Equal(ref) {
				c.mergeViolations++
				c.violation(CheckMergeDeterminism, n, h.id, "the replica differs from the join of the %d acknowledged deltas", len(h.deltas))
				break
			}
		}
	}
}

// unguarded returns d without its guard: the checks compare replicas with
// the lattice join of the deltas, which a guard only delays (a replica that
// does not meet it takes the delta's version entries later, with
// anti-entropy's whole states), so that the join does not depend on the
// order the checker merges them in.
func unguarded(d *crdt.Session) *crdt.Session {
	if d.Guard == nil {
		return d
	}
	u := *d
	u.Guard = nil
	return &u
}

// tieProbes merges, for a few pairs of h's deltas that set the same key
// from different nodes, the pair with equal timestamps both ways round.
func (c *checker) tieProbes(h *sessHist) {
	// A few probes per session suffice (the bug shows on any tie); the
	// pairs looked at are bounded so that a session with many deltas from
	// one node does not cost a quadratic scan.
	const window = 8
	probes := 0
	for i, a := range h.deltas[:min(len(h.deltas), window)] {
		if a.IsDestroyed() || a.Fields.Len() == 0 {
			continue
		}
		for _, b := range h.deltas[i+1 : min(len(h.deltas), i+1+window)] {
			if b.IsDestroyed() {
				continue
			}
			for k, fa := range a.Fields.All() {
				fb, ok := b.Fields.Get(k)
				if !ok || fb.TS.Node == fa.TS.Node {
					continue
				}
				fb.TS.Time = fa.TS.Time
				tb := b.Clone()
				tb.Fields = tb.Fields.With(k, fb)
				x := &crdt.Session{ID: h.id}
				_, _ = x.Merge(unguarded(a))
				_, _ = x.Merge(unguarded(tb))
				y := &crdt.Session{ID: h.id}
				_, _ = y.Merge(unguarded(tb))
				_, _ = y.Merge(unguarded(a))
				if !x.Equal(y) {
					c.mergeViolations++
					c.violation(CheckMergeDeterminism, nil, h.id, "field %s: two writes with equal timestamps from nodes %d and %d merge to different values depending on order", k, fa.TS.Node, fb.TS.Node)
					return
				}
				if probes++; probes >= 2 {
					return
				}
				break
			}
		}
	}
}

// faultDivergence is how far the mesh diverged while faults were active
// (reported, not judged).
func (r *Result) faultDivergence() (peakDigests int, peakUnreplicated int64) {
	for _, s := range r.Series {
		for _, p := range r.Faults {
			if s.T >= p.Start && (p.End < 0 || s.T <= p.End) {
				peakDigests = max(peakDigests, s.Digests)
				peakUnreplicated = max(peakUnreplicated, s.Unreplicated)
				break
			}
		}
	}
	return
}
