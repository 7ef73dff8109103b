package simulations

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// opKind is a workload operation.
type opKind uint8

// Operations, in the order of Rates.
const (
	opCreate opKind = iota
	opSet
	opRemove
	opTouch
	opRenew
	opDestroy
	opRead
	numOps
)

var opNames = [numOps]string{"create", "set", "remove", "touch", "renew", "destroy", "read"}

func (k opKind) String() string {
	if k < numOps {
		return opNames[k]
	}
	return fmt.Sprintf("opKind(%d)", k)
}

// wsession is a session the clients know of.
type wsession struct {
	h         *sessHist
	home      int
	posHome   int
	posAll    int
	forgotten bool
}

// workload generates client operations: a Poisson process per node that
// takes traffic, operation kinds drawn by their rates, sessions by a Zipf
// law over the clients' live sessions (newest hottest).
type workload struct {
	e *engine
	// Per node: its clients' stream (streamWorkload), its sessions'
	// tokens (streamTokens), its Zipf laws by imax, its count of values
	// written (a value names its node and that count).
	rngs   []*rand.Rand
	tokens []*rand.Rand
	zipfs  []map[uint64]*rand.Zipf
	values []int
	made   []int // sessions given a token, by the node they were made on
	// buckets marks the digest buckets the run's sessions fall in.
	buckets [persist.Buckets]bool
	rates   [numOps]float64
	total   float64
	base    []bool // nodes the workload's own rates apply to
	phases  []phase
	homes   [][]*wsession
	all     []*wsession
	keys    []string
	pad     []byte
	// One write's field map, value and removed key, reused (see set).
	setMap map[string][]byte
	val    []byte
	rm     [1]string
	until  int64
	// steps holds each node's next operation, made once rather than a
	// closure per operation.
	steps []func()

	// OpCounts per kind: attempted, acknowledged, missed (session not
	// visible), unavailable (node down).
	attempted, acked, missed [numOps]int64
	unavailable              int64
}

func newWorkload(e *engine) *workload {
	sc := e.sc
	r := sc.Workload.Rates
	w := &workload{
		e:      e,
		rngs:   make([]*rand.Rand, len(e.nodes)),
		tokens: make([]*rand.Rand, len(e.nodes)),
		zipfs:  make([]map[uint64]*rand.Zipf, len(e.nodes)),
		values: make([]int, len(e.nodes)),
		made:   make([]int, len(e.nodes)),
		rates:  [numOps]float64{r.Create, r.Set, r.Remove, r.Touch, r.Renew, r.Destroy, r.Read},
		homes:  make([][]*wsession, len(e.nodes)),
		until:  int64(sc.Duration),
	}
	for _, x := range w.rates {
		w.total += x
	}
	for i, n := range e.nodes {
		w.rngs[i] = e.stream(streamWorkload, n.name)
		w.tokens[i] = e.stream(streamTokens, n.name)
	}
	for i := range sc.Workload.Keys {
		w.keys = append(w.keys, fmt.Sprintf("k%d", i))
	}
	w.pad = make([]byte, sc.Workload.ValueBytes)
	for i := range w.pad {
		w.pad[i] = 'a' + byte(i%26)
	}
	traffic := make([]bool, len(e.nodes))
	if sc.Workload.Nodes == nil {
		for i := range traffic {
			traffic[i] = true
		}
	} else {
		traffic = e.members(sc.Workload.Nodes)
	}
	w.base = traffic
	for _, p := range sc.Workload.Phases {
		ph := phase{start: int64(p.At), end: int64(p.At + p.For), in: traffic}
		if p.Nodes != nil {
			ph.in = e.members(p.Nodes)
		}
		r := p.Rates
		ph.rates = [numOps]float64{r.Create, r.Set, r.Remove, r.Touch, r.Renew, r.Destroy, r.Read}
		for _, x := range ph.rates {
			ph.total += x
		}
		for i, in := range ph.in {
			traffic[i] = traffic[i] || in
		}
		w.phases = append(w.phases, ph)
	}
	for i, n := range e.nodes {
		n.traffic = traffic[i] || w.base[i]
	}
	return w
}

// phase is a period with its own rates on some nodes (Workload.Phases).
type phase struct {
	start, end int64
	in         []bool
	rates      [numOps]float64
	total      float64
}

// ratesAt returns node n's rates now: the last phase listed that covers
// it, else the workload's own rates (on the nodes that take traffic).
func (w *workload) ratesAt(n int) (*[numOps]float64, float64) {
	now := w.e.now
	for i := len(w.phases) - 1; i >= 0; i-- {
		if p := &w.phases[i]; p.in[n] && now >= p.start && now < p.end {
			return &p.rates, p.total
		}
	}
	if !w.base[n] {
		return &[numOps]float64{}, 0
	}
	return &w.rates, w.total
}

// boundary returns the next start or end of a phase of node n after now
// (-1: none).
func (w *workload) boundary(n int) int64 {
	b := int64(-1)
	for i := range w.phases {
		p := &w.phases[i]
		if !p.in[n] {
			continue
		}
		for _, t := range [2]int64{p.start, p.end} {
			if t > w.e.now && (b < 0 || t < b) {
				b = t
			}
		}
	}
	return b
}

func (w *workload) start() {
	for _, n := range w.e.nodes {
		switch {
		case !n.traffic:
		case n.start > 0:
			// A late joiner's clients come with it: before it starts,
			// they are not turned away, they are not there.
			w.e.at(n.start, func() { w.next(n) })
		default:
			w.next(n)
		}
	}
}

// next schedules node n's next operation: a Poisson process at the node's
// current total rate, drawn again at each phase boundary (exact, as the
// process is memoryless).
func (w *workload) next(n *simNode) {
	_, total := w.ratesAt(n.idx)
	t := int64(-1)
	if total > 0 {
		t = w.e.now + int64(w.rngs[n.idx].ExpFloat64()/total*float64(time.Second))
	}
	if b := w.boundary(n.idx); b >= 0 && (t < 0 || t >= b) {
		if b < w.until {
			w.e.at(b, func() { w.next(n) })
		}
		return
	}
	if t < 0 || t >= w.until {
		return
	}
	w.e.at(t, w.step(n))
}

// step returns what runs node n's next operation.
func (w *workload) step(n *simNode) func() {
	for len(w.steps) <= n.idx {
		w.steps = append(w.steps, nil)
	}
	if w.steps[n.idx] == nil {
		w.steps[n.idx] = func() {
			w.op(n)
			w.next(n)
		}
	}
	return w.steps[n.idx]
}

func (w *workload) pickKind(n int) opKind {
	rates, total := w.ratesAt(n)
	u := w.rngs[n].Float64() * total
	for k, r := range rates {
		if u < r {
			return opKind(k)
		}
		u -= r
	}
	return opRead
}

// pick draws a live session for an operation on node n.
func (w *workload) pick(n int) *wsession {
	list := w.homes[n]
	rng := w.rngs[n]
	if len(list) == 0 || (w.e.sc.Workload.Roam > 0 && rng.Float64() < w.e.sc.Workload.Roam) {
		list = w.all
	}
	if len(list) == 0 {
		return nil
	}
	var r int
	if s := w.e.sc.Workload.Skew; s > 1 && len(list) > 1 {
		r = int(w.zipf(n, s, uint64(len(list)-1)).Uint64())
	} else {
		r = rng.IntN(len(list))
	}
	return list[len(list)-1-r]
}

// zipf returns node n's Zipf distribution over [0, imax] with skew s (the
// run's): the same draws as a new one, without its setup on every pick.
func (w *workload) zipf(n int, s float64, imax uint64) *rand.Zipf {
	z, ok := w.zipfs[n][imax]
	if !ok {
		if w.zipfs[n] == nil {
			w.zipfs[n] = map[uint64]*rand.Zipf{}
		}
		z = rand.NewZipf(w.rngs[n], s, 1, imax)
		w.zipfs[n][imax] = z
	}
	return z
}

func (w *workload) add(s *wsession) {
	s.posHome = len(w.homes[s.home])
	w.homes[s.home] = append(w.homes[s.home], s)
	s.posAll = len(w.all)
	w.all = append(w.all, s)
}

// retire forgets a destroyed session, after Workload.Linger.
func (w *workload) retire(s *wsession) {
	linger := int64(w.e.sc.Workload.Linger)
	if linger == 0 {
		w.forget(s)
		return
	}
	w.e.at(w.e.now+linger, func() { w.forget(s) })
}

// forget drops a session the clients will not use again (destroyed,
// renewed or expired). Swap-removal keeps it O(1); the Zipf ranks stay
// roughly by age.
func (w *workload) forget(s *wsession) {
	if s.forgotten {
		return
	}
	s.forgotten = true
	h := w.homes[s.home]
	last := h[len(h)-1]
	h[s.posHome], last.posHome = last, s.posHome
	w.homes[s.home] = h[:len(h)-1]
	last = w.all[len(w.all)-1]
	w.all[s.posAll], last.posAll = last, s.posAll
	w.all = w.all[:len(w.all)-1]
}

// set returns the one-field write of key to a new value of node n, for
// one Core.Local. The map and the value are the workload's, reused for
// every write: the Core copies the values it stamps into the delta and
// keeps nothing of the map (as Node.Set hands it a pooled one).
func (w *workload) set(n *simNode, key string) map[string][]byte {
	w.values[n.idx]++
	v := append(append(w.val[:0], n.name...), '#')
	v = strconv.AppendInt(v, int64(w.values[n.idx]), 10)
	if len(v) < len(w.pad) {
		v = append(v, w.pad[len(v):]...)
	}
	w.val = v
	if w.setMap == nil {
		w.setMap = make(map[string][]byte, 1)
	}
	clear(w.setMap)
	w.setMap[key] = v
	return w.setMap
}

// remove returns the one-key removal of key, for one Core.Local, which
// keeps nothing of it.
func (w *workload) remove(key string) []string {
	w.rm[0] = key
	return w.rm[:]
}

// newID draws a session token from node n's token stream and returns
// the id production stores it under (node.SessionID: a hash of the
// token), so that sessions spread over the digest buckets as they do in
// production, differently for every seed.
func (w *workload) newID(n *simNode) string {
	w.made[n.idx]++
	var raw [32]byte
	for i := 0; i < len(raw); i += 8 {
		binary.LittleEndian.PutUint64(raw[i:], w.tokens[n.idx].Uint64())
	}
	id, ok := node.SessionID(base64.RawURLEncoding.EncodeToString(raw[:]))
	if !ok {
		panic("simulations: a drawn token is not a token")
	}
	w.buckets[persist.BucketOf(id)] = true
	return id
}

// op runs one client operation on node n.
func (w *workload) op(n *simNode) {
	e := w.e
	kind := w.pickKind(n.idx)
	w.attempted[kind]++
	if !n.up || !e.ready(n) {
		w.unavailable++
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: kind.String(), Result: "unavailable"})
		return
	}
	now := e.localTime(n)
	if kind == opCreate {
		w.create(n, now)
		return
	}
	s := w.pick(n.idx)
	if s == nil {
		w.missed[kind]++
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: kind.String(), Result: "no_session"})
		return
	}
	if e.part != nil && !n.core.ServesID(s.h.id) {
		// Not held here: one hop to a holder, as Node reads it; the
		// operation goes on once the answers are in.
		began, seen := now.UnixMilli(), s.h.seen.has(n.idx)
		e.readRemote(n, s.h.id, func(cur *crdt.Session, now time.Time, _ int) { w.opOn(n, kind, s, cur, now, began, seen) })
		return
	}
	w.opOn(n, kind, s, e.visible(n, s.h.id, now), now, 0, false)
}

// opOn goes on with operation kind on node n, which read session s as cur
// (nil: not found) at local time now, in a read that began at local time
// began (ms; 0: now).
func (w *workload) opOn(n *simNode, kind opKind, s *wsession, cur *crdt.Session, now time.Time, began int64, seenBefore bool) {
	e := w.e
	e.chk.readSince(n, s.h, cur, now, began, seenBefore)
	if cur == nil {
		w.missed[kind]++
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: kind.String(), Session: s.h.id, Result: "not_found"})
		if e.chk.gone(s.h, now) {
			w.forget(s)
		}
		return
	}
	switch kind {
	case opRead:
		w.acked[kind]++
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: "read", Session: s.h.id, Result: "ok"})
	case opSet:
		key := w.keys[w.rngs[n.idx].IntN(len(w.keys))]
		w.count(kind, w.local(n, now, kind, s, nil, node.LocalOp{Kind: node.OpUpdate, ID: s.h.id, Stored: cur, Set: w.set(n, key)}, key))
	case opRemove:
		// The node's own fields (its version vector, under
		// node.ReservedKeyPrefix) are no client's to remove: the node
		// refuses them, so a third of the removes went nowhere.
		keys := slices.DeleteFunc(cur.Keys(), func(k string) bool { return strings.HasPrefix(k, node.ReservedKeyPrefix) })
		if len(keys) == 0 {
			w.missed[kind]++
			e.record(TraceEvent{Kind: "op", Node: n.name, Op: "remove", Session: s.h.id, Result: "no_field"})
			return
		}
		key := keys[w.rngs[n.idx].IntN(len(keys))]
		w.count(kind, w.local(n, now, kind, s, nil, node.LocalOp{Kind: node.OpUpdate, ID: s.h.id, Stored: cur, Remove: w.remove(key)}, key))
	case opTouch:
		w.count(kind, w.local(n, now, kind, s, nil, node.LocalOp{Kind: node.OpTouch, ID: s.h.id, Stored: cur}, ""))
	case opDestroy:
		if w.count(kind, w.local(n, now, kind, s, nil, node.LocalOp{Kind: node.OpDestroy, ID: s.h.id, Stored: cur}, "")) {
			w.retire(s)
		}
	case opRenew:
		id := w.newID(n)
		fresh := &wsession{h: e.chk.session(id, n.idx), home: n.idx}
		if w.count(kind, w.local(n, now, kind, fresh, s, node.LocalOp{Kind: node.OpRenew, ID: s.h.id, Stored: cur, NewID: id}, "")) {
			w.add(fresh)
			w.retire(s)
		}
	}
}

func (w *workload) create(n *simNode, now time.Time) {
	e := w.e
	id := w.newID(n)
	wl := e.sc.Workload
	key := w.keys[w.rngs[n.idx].IntN(len(w.keys))]
	s := &wsession{h: e.chk.session(id, n.idx), home: n.idx}
	op := node.LocalOp{Kind: node.OpCreate, ID: id, Set: w.set(n, key),
		Idle: wl.IdleTimeout.D(), Lifetime: wl.Lifetime.D()}
	if w.count(opCreate, w.local(n, now, opCreate, s, nil, op, key)) {
		w.add(s)
	}
}

func (w *workload) count(kind opKind, acked bool) bool {
	if acked {
		w.acked[kind]++
	}
	return acked
}

// local runs a client operation through the node's own path (Core.Local,
// then the storage, broadcast and acknowledgement it hands out, as Node
// carries them out) and reports whether it was acknowledged. s is the
// session written (the new one of a renewal, whose old one is old). The
// caller counts it.
func (w *workload) local(n *simNode, now time.Time, kind opKind, s, old *wsession, op node.LocalOp, key string) bool {
	e := w.e
	ev := TraceEvent{Kind: "op", Node: n.name, Op: kind.String(), Session: s.h.id, Key: key}
	if old != nil {
		ev.Session = old.h.id
	}
	ticket, err := n.core.Local(now, op)
	if err != nil {
		ev.Result, ev.Detail = "refused", err.Error()
		e.record(ev)
		return false
	}
	if ticket == 0 {
		// A lazy touch: it stays on this node, unstored and unsent.
		ev.Result, ev.Detail = "ok", "lazy"
		e.record(ev)
		e.chk.lazyTouch(n, s.h, now.UnixMilli())
		return true
	}
	var a node.Ack
	if e.hooks != nil && e.hooks.skipApply != nil && e.hooks.skipApply(e, n.idx, kind) {
		// The planted bug: acknowledge without storing or sending.
		r := n.core.Ready()
		rest := r.Storage[:0]
		for _, st := range r.Storage {
			if st.Ticket == ticket {
				a = node.Ack{Ticket: ticket, Deltas: st.Batch.Sessions()}
			} else {
				rest = append(rest, st)
			}
		}
		r.Storage = rest
		e.carry(n, r)
	} else {
		e.collect(n)
		var ok bool
		if a, ok = n.acks[ticket]; !ok {
			e.fail(fmt.Errorf("simulations: %s: local %s: no acknowledgement", n.name, kind))
			return false
		}
		delete(n.acks, ticket)
	}
	if a.Err != nil {
		ev.Result, ev.Detail = "refused", a.Err.Error()
		if errors.Is(a.Err, crdt.ErrClockDrift) {
			ev.Result = "deferred"
		}
		e.record(ev)
		return false
	}
	ev.Result = "ok"
	e.record(ev)
	e.fingerprint('W', n.idx, int(kind), int64(s.h.idx), 0)
	e.dirty = true
	switch {
	case kind == opRenew && len(a.Deltas) == 2:
		e.chk.ack(n, opRenew, s.h, a.Deltas[0])
		e.chk.ack(n, opDestroy, old.h, a.Deltas[1])
	default:
		for _, d := range a.Deltas {
			e.chk.ack(n, kind, s.h, d)
		}
	}
	return true
}

// visible returns the stored session if a reader at now may see it, as
// node's Get decides (Core.Visible, lazy touches included).
func (e *engine) visible(n *simNode, id string, now time.Time) *crdt.Session {
	s, err := n.store.Get(id)
	if errors.Is(err, persist.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.fail(fmt.Errorf("simulations: %s: get: %w", n.name, err))
		return nil
	}
	if _, ok := n.core.Visible(s, now); !ok {
		return nil
	}
	return s
}
