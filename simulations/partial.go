package simulations

import (
	"errors"
	"fmt"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/internal/placement"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Partial replication (Config.Replicas > 0). The cores place, hand off,
// pull and drop by themselves, from the hellos they exchange over the
// simulated connections (node/partial.go): the engine only gives each core
// its region and, as Node does, carries out reads of sessions a node does
// not hold as one hop to their holders (Core.ReadRemote; the answers go to
// the waiting read, node.FetchAnswer) and lets stores drop what was handed
// off (simStore.Drop).
//
// The checkers judge against the placement the nodes should agree on once
// membership is stable: rendezvous hashing (internal/placement, the same
// code the cores run) over the nodes running in each region.

// partialSim is the engine's partial replication state.
type partialSim struct {
	r       int
	regions int
	// truth is each region's placement over its running nodes; stale
	// after a start or a crash.
	truth []*placement.Table
	stale bool
	// reads are the non-holder reads waiting for answers, per node and
	// session id.
	reads []map[string][]*remoteRead
	// nextConverge is the earliest true time of the next convergence
	// check: comparing every slot on every node is too dear for every
	// event. digs are the nodes' digests it reads (kept: 32 KiB each).
	nextConverge int64
	digs         []persist.Digests

	// Figures.
	remoteReads, remoteNoHolder, remoteTimeouts int64
	drops                                       int64
	unsafeDrops                                 int64
	underReplicated                             int64
	probes, staleProbes                         int64
	copies                                      []int64 // per region: copies of live sessions at the end
	sessionsJudged                              int64
}

// convergeEvery is how often (true time) convergence is looked at under
// partial replication: the figure is precise to that.
const convergeEvery = int64(100 * time.Millisecond)

func newPartialSim(e *engine) *partialSim {
	return &partialSim{r: e.cfg.Replicas, regions: len(e.sc.Regions), stale: true,
		reads: make([]map[string][]*remoteRead, len(e.nodes))}
}

// placement returns each region's placement over the nodes running now.
func (e *engine) placement() []*placement.Table {
	p := e.part
	if !p.stale {
		return p.truth
	}
	members := make([][]string, p.regions)
	for _, n := range e.nodes {
		if n.up {
			members[n.region] = append(members[n.region], string(n.peer))
		}
	}
	p.truth = make([]*placement.Table, p.regions)
	for g := range p.truth {
		p.truth[g] = placement.NewTable(members[g], p.r)
	}
	p.stale = false
	return p.truth
}

// holds reports whether node n should hold session id with the nodes
// running now (always under full replication).
func (e *engine) holds(n *simNode, id string) bool {
	if e.part == nil {
		return true
	}
	return e.placement()[n.region].Holds(placement.SlotOf(id), string(n.peer))
}

// membershipChanged follows a start or a crash.
func (e *engine) membershipChanged() {
	if e.part != nil {
		e.part.stale = true
	}
}

// partConverged reports whether the stores agree as placement wants: every
// running holder of a slot, in every region, has the same digest for it,
// and a running node that does not hold it stores nothing of it (what it
// wrote or lost was handed off and dropped).
func (e *engine) partConverged() bool {
	tables := e.placement()
	type view struct {
		n *simNode
		d *persist.Digests
	}
	p := e.part
	if p.digs == nil {
		p.digs = make([]persist.Digests, len(e.nodes))
	}
	var vs []view
	for i, n := range e.nodes {
		if n.up {
			n.store.DigestsInto(&p.digs[i])
			vs = append(vs, view{n, &p.digs[i]})
		}
	}
	for s := range placement.Slots {
		var want uint64
		first := true
		for _, v := range vs {
			got := v.d.Buckets[s]
			if !tables[v.n.region].Holds(s, string(v.n.peer)) {
				if got != 0 {
					return false
				}
				continue
			}
			if first {
				want, first = got, false
			} else if got != want {
				return false
			}
		}
	}
	return true
}

// remoteRead is a client's read of a session its node does not hold,
// waiting for the holders' answers (Node.readRemote).
type remoteRead struct {
	n        *simNode
	inc      uint32
	id       string
	asked    int
	got      int
	answered int
	own      bool // asked its node's region's holders (a silent round asks the others)
	round    int
	out      *crdt.Session
	local    *crdt.Session // the node's own copy when the read began
	done     bool
	fn       func(cur *crdt.Session, now time.Time, answered int)
}

// readRemote reads session id on node n, which does not hold it, as Node
// does: the core asks the connected holders (its region's first), the
// answers merge with what n stores itself (a write not handed off yet),
// and fn gets the result as a reader sees it (nil: not found) once every
// holder asked answered or ConsistencyWait passed. fn is not called if
// the node crashes meanwhile.
func (e *engine) readRemote(n *simNode, id string, fn func(cur *crdt.Session, now time.Time, answered int)) {
	p := e.part
	p.remoteReads++
	// The node's own copy is read first, as Node does (storeGetFrom):
	// a handoff may drop it while the holders are asked.
	local, err := n.store.Get(id)
	if errors.Is(err, persist.ErrNotFound) {
		local, err = nil, nil
	}
	if err != nil {
		e.fail(fmt.Errorf("simulations: %s: get: %w", n.name, err))
		return
	}
	asked, own := n.core.ReadRemote(id, false)
	e.collect(n)
	rr := &remoteRead{n: n, inc: n.inc, id: id, asked: len(asked), own: own, local: local, fn: fn}
	if len(asked) == 0 {
		p.remoteNoHolder++
		e.finishRead(rr)
		return
	}
	if p.reads[n.idx] == nil {
		p.reads[n.idx] = map[string][]*remoteRead{}
	}
	p.reads[n.idx][id] = append(p.reads[n.idx][id], rr)
	e.awaitRound(rr)
}

// awaitRound ends rr's current round of answers after ConsistencyWait. A
// first round in which none of the node's own region's holders answered
// asks the other regions' holders for one more, as Node does.
func (e *engine) awaitRound(rr *remoteRead) {
	round := rr.round
	e.at(e.now+int64(e.cfg.ConsistencyWait), func() {
		if rr.done || rr.round != round {
			return
		}
		e.part.remoteTimeouts++
		if rr.answered == 0 && rr.own && rr.round == 0 && rr.inc == rr.n.inc && rr.n.up {
			asked, _ := rr.n.core.ReadRemote(rr.id, true)
			e.collect(rr.n)
			if len(asked) > 0 {
				rr.round, rr.got, rr.asked = 1, 0, len(asked)
				e.awaitRound(rr)
				return
			}
		}
		e.finishRead(rr)
	})
}

// answer hands a fetch answer delivered to node n to the reads waiting for
// it, and reports whether there were any (Node.remoteAnswer): the core
// then does not see it.
func (e *engine) answer(n *simNode, data []byte) bool {
	p := e.part
	if p.reads[n.idx] == nil {
		return false
	}
	id, s, ok := node.FetchAnswer(data, e.cfg.Limits)
	if !ok {
		return false
	}
	ws := p.reads[n.idx][id]
	if len(ws) == 0 || n.core.ServesID(id) {
		return false
	}
	for _, rr := range ws {
		rr.got++
		if s != nil {
			rr.answered++
			if rr.out == nil {
				rr.out = s.Clone()
			} else if _, err := rr.out.Merge(s); err != nil {
				e.fail(fmt.Errorf("simulations: %s: remote read: %w", n.name, err))
			}
		} else {
			rr.answered++
		}
		if rr.got == rr.asked {
			e.finishRead(rr)
		}
	}
	return true
}

// finishRead merges the node's own copy into the answers and hands the
// result to the read's continuation.
func (e *engine) finishRead(rr *remoteRead) {
	if rr.done {
		return
	}
	rr.done = true
	n := rr.n
	if m := e.part.reads[n.idx]; m != nil {
		ws := m[rr.id]
		for i, w := range ws {
			if w == rr {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(m, rr.id)
		} else {
			m[rr.id] = ws
		}
	}
	if !n.up || n.inc != rr.inc {
		e.wl.unavailable++
		e.record(TraceEvent{Kind: "op", Node: n.name, Session: rr.id, Result: "unavailable", Detail: "crashed during a remote read"})
		return
	}
	now := e.localTime(n)
	out := rr.out
	local := rr.local
	if rr.answered == 0 && local == nil {
		// No holder answered and no copy here: the node cannot tell
		// whether the session exists (node.ErrUnavailable).
		e.wl.unavailable++
		e.record(TraceEvent{Kind: "op", Node: n.name, Session: rr.id, Result: "unavailable", Detail: "no holder answered"})
		return
	}
	switch {
	case out == nil:
		out = local
	case local != nil:
		if _, err := out.Merge(local); err != nil {
			e.fail(fmt.Errorf("simulations: %s: remote read: %w", n.name, err))
			return
		}
	}
	n.core.ObserveRead(now, out)
	if out != nil && out.IsDestroyed() {
		// The node learnt the destroy from a holder: as if it had
		// applied it (it must not serve the session again).
		if h, ok := e.chk.byID[rr.id]; ok {
			h.seen.set(n.idx)
		}
	}
	if out != nil {
		if _, ok := n.core.Visible(out, now); !ok {
			out = nil
		}
	}
	rr.fn(out, now, rr.answered)
}

// Drop forgets sessions handed off to their holders (node.Dropper). The
// checker looks at what each drop leaves in the node's region first.
func (s *simStore) Drop(hs []persist.Handed) (int, error) {
	e, n := s.e, s.n
	if n.diskFaults > 0 {
		e.stats.diskErrors++
		return 0, fmt.Errorf("simulations: %s: %w", n.name, errDisk)
	}
	before := make([]*crdt.Session, len(hs))
	for i, h := range hs {
		if st, err := n.store.Get(h.ID); err == nil {
			before[i] = st
		}
	}
	d, err := n.store.Drop(hs)
	for i, h := range hs {
		if before[i] == nil {
			continue
		}
		if _, gerr := n.store.Get(h.ID); errors.Is(gerr, persist.ErrNotFound) {
			e.chk.dropped(n, before[i])
		}
	}
	e.dirty = true
	return d, err
}

// dropped checks a session node n just dropped: its region must keep at
// least R other copies holding everything the dropped one held (the
// holders n handed it to acknowledged storing it). Stores of nodes that
// are down count: they keep what they acknowledged.
func (c *checker) dropped(n *simNode, st *crdt.Session) {
	e := c.e
	p := e.part
	p.drops++
	e.fingerprint('X', n.idx, 0, 0, 0)
	if !st.IsDestroyed() && !st.Visible(e.localTime(n)) {
		return // expired: its holders refuse it, and may acknowledge that
	}
	copies := 0
	for _, m := range e.nodes {
		if m == n || m.region != n.region || !m.ever {
			continue
		}
		if cur, err := m.store.Get(st.ID); err == nil && holdsAll(cur, st) {
			copies++
		}
	}
	if copies < p.r {
		p.unsafeDrops++
		c.violation(CheckUnsafeDrops, n, st.ID, "dropped a copy its region holds %d other times (R = %d)", copies, p.r)
	}
}

// holdsAll reports whether state cur already holds everything st holds.
func holdsAll(cur, st *crdt.Session) bool {
	x := cur.Clone()
	if _, err := x.Merge(st); err != nil {
		return false
	}
	return x.Equal(cur)
}

// finalHolders judges, at the end, every live session acknowledged by a
// node still running (or replicated to one): in each region with nodes
// running, at least min(R, running nodes) of them hold every acknowledged
// write of it. up holds the running nodes.
func (c *checker) finalHolders(up *bitset) {
	e := c.e
	p := e.part
	running := make([]int, p.regions)
	for _, n := range e.nodes {
		if n.up {
			running[n.region]++
		}
	}
	p.copies = make([]int64, p.regions)
	for _, h := range c.sessions {
		live := len(h.ops) > 0
		for _, i := range h.ops {
			op := c.ops.at(int(i))
			if op.kind == opDestroy || !c.counted(i, up) {
				live = false // destroyed, or for a good reason missing
			}
		}
		for _, n := range e.nodes {
			if n.up && c.gone(h, e.localTime(n)) {
				live = false // collected, or about to be
			}
		}
		if !live {
			continue
		}
		p.sessionsJudged++
		copies := make([]int, p.regions)
		for _, n := range e.nodes {
			if !n.up {
				continue
			}
			st, err := n.store.Get(h.id)
			if err != nil {
				continue
			}
			all := true
			for _, i := range h.ops {
				if c.missing(h, st, c.ops.at(int(i))) != "" {
					all = false
					break
				}
			}
			if all {
				copies[n.region]++
			}
		}
		for g, k := range copies {
			p.copies[g] += int64(k)
			if want := min(p.r, running[g]); k < want {
				p.underReplicated++
				c.violation(CheckHolders, nil, h.id, "region %s: %d nodes hold its latest writes, want min(R, running) = %d",
					e.sc.Regions[g].Name, k, want)
			}
		}
	}
}

// explainPartialDivergence records, when the stores do not agree as
// placement wants at the end, on how many slots holders differ and how
// many slots non-holders still store.
func (e *engine) explainPartialDivergence() {
	tables := e.placement()
	differ, stray := 0, 0
	var ds []*persist.Digests
	var ns []*simNode
	for _, n := range e.nodes {
		if n.up {
			ds = append(ds, n.store.Digests())
			ns = append(ns, n)
		}
	}
	for s := range placement.Slots {
		var want uint64
		first, bad, strayed := true, false, false
		for i, n := range ns {
			got := ds[i].Buckets[s]
			if !tables[n.region].Holds(s, string(n.peer)) {
				strayed = strayed || got != 0
				continue
			}
			if first {
				want, first = got, false
			} else if got != want {
				bad = true
			}
		}
		if bad {
			differ++
		}
		if strayed {
			stray++
		}
	}
	if differ > 0 || stray > 0 {
		e.chk.violation(CheckConvergence, nil, "", "at the end, holders disagree on %d slots; nodes that do not hold them still store sessions of %d slots", differ, stray)
	}
}

// probeLead is how long before the end the probe reads are made.
const probeLead = int64(2 * time.Second)

// scheduleProbes has, under partial replication, every session read once
// on a node that does not hold it, shortly before the end (the mesh has
// settled): a holder that answers must give the latest acknowledged state.
func (e *engine) scheduleProbes() {
	if e.part == nil || e.end-probeLead <= e.settle {
		return
	}
	e.at(e.end-probeLead, e.probe)
}

func (e *engine) probe() {
	c := e.chk
	live := c.running()
	for _, h := range c.sessions {
		judge, destroyed := len(h.ops) > 0, false
		for _, i := range h.ops {
			if !c.counted(i, &live) {
				judge = false // missing for a good reason
			}
			destroyed = destroyed || c.ops.at(int(i)).kind == opDestroy
		}
		if !judge {
			continue
		}
		// A node that does not hold it, chosen by the session.
		var reader *simNode
		for k := range e.nodes {
			n := e.nodes[(h.idx+k)%len(e.nodes)]
			if n.up && !e.holds(n, h.id) {
				reader = n
				break
			}
		}
		if reader == nil || c.gone(h, e.localTime(reader)) {
			continue
		}
		e.readRemote(reader, h.id, func(cur *crdt.Session, now time.Time, answered int) {
			if answered == 0 || c.gone(h, now) {
				return
			}
			e.part.probes++
			why := ""
			switch {
			case destroyed && cur != nil:
				why = "a destroyed session served"
			case destroyed:
			case cur == nil:
				why = "not found"
			default:
				for _, i := range h.ops {
					if w := c.missing(h, cur, c.ops.at(int(i))); w != "" {
						why = c.describe(c.ops.at(int(i))) + ": " + w
						break
					}
				}
			}
			if why != "" {
				e.part.staleProbes++
				c.violation(CheckStaleReads, reader, h.id, "read through a holder after the settle: %s", why)
			}
		})
	}
}
