package simulations

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// epoch is true time 0 of every run.
var epoch = time.UnixMilli(1_700_000_000_000)

// simNode is one simulated peer: its store outlives crashes, its core does
// not.
type simNode struct {
	idx    int
	name   string
	peer   node.PeerID
	region int
	start  int64
	clock  vclock
	// coreSeeds gives each start of the node's core its seed.
	coreSeeds *rand.Rand
	store     *persist.Store
	core      *node.Core
	up        bool
	inc       uint32 // incremented at every start and crash
	ever      bool   // has run at some point

	tickArmed bool
	tickAt    int64
	tickGen   uint64
	lastTick  int64
	traffic   bool // takes workload operations

	sim        *simStore // the store as the core sees it
	dur        durableState
	diskFaults int   // active disk faults
	clockSetMs int64 // local ms just after the last clock fault changed the clock

	acks map[uint64]node.Ack // acknowledgements not yet taken by the workload

	// unstored: the storage work in hand stores nothing (planted, see
	// hooks.handoffUnstored).
	unstored bool
}

// hooks are test-only knobs (set from _test.go files only).
type hooks struct {
	// rewrite may replace a message in flight from→to.
	rewrite func(e *engine, from, to int, gossip bool, data []byte) []byte
	// skipApply acknowledges a local write without storing or sending it.
	skipApply func(e *engine, n int, op opKind) bool
	// skipBucket, when set, is a bucket anti-entropy never sends.
	skipBucket *int
	// loseDeferred hides deferred deltas from the cores, which then never
	// retry them.
	loseDeferred bool
	// powerLossExtra makes a power loss lose that much more than the
	// last fsync interval (a durability bug).
	powerLossExtra int64
	// ignoreRevocation serves revoked sessions to versioned clients;
	// partialVersionedWrites sends their writes as the changed fields
	// only, though stamped in the version (consistency.go).
	ignoreRevocation       bool
	partialVersionedWrites bool
	// handoffUnstored makes a holder acknowledge a handoff without
	// storing it (partial replication: acknowledged before persisted).
	handoffUnstored bool
	// staleFetches makes holders answer fetches with the session's
	// header only (its fields left out): non-holder reads miss writes.
	staleFetches bool
	// verifyShared checks, before each recipient of a broadcast takes
	// the batch every recipient shares, that the cores that took it
	// before left it as decoded.
	verifyShared bool
}

type engine struct {
	sc    *Scenario
	seed  uint64
	cfg   node.Config
	hooks *hooks

	now   int64
	q     queue
	spare []*message // delivered messages, for send to reuse
	// sparePayloads are gossip payloads no message refers to any more.
	sparePayloads []*gossipPayload
	nodes         []*simNode
	byPeer        map[node.PeerID]int
	net           *network
	wl            *workload
	part          *partialSim // nil: full replication
	cw            *consistencyWorkload
	chk           *checker
	stats         stats

	settle, end int64
	// heal is when convergence is measured from (Scenario.lastHeal);
	// healCover is set when traffic goes on past it.
	heal      int64
	healCover bool
	// reconnectedAt is when, after the heal, every two running nodes were
	// connected (-1: not yet).
	reconnectedAt int64
	dirty         bool  // a store may have changed since the last convergence check
	convergedAt   int64 // -1: not converged (since settle)

	tmp string // Badger stores live here

	results []node.StorageResult // carry's buffer

	fp     hash.Hash
	fpBuf  []byte
	trace  traceLog
	faults []FaultPeriod
	// faultRNG draws random flap periods (streamFaults).
	faultRNG *rand.Rand
	series   []Sample
	err      error
}

type stats struct {
	channels              [numChannels]ChannelStats
	rejected              int64
	connects, disconnects int64
	dials                 int64
	diskErrors            int64
	ticks                 int64
	events                int64
	core                  coreMetrics
}

func newEngine(sc *Scenario, seed uint64, h *hooks) (*engine, error) {
	cfg, err := sc.nodeConfig()
	if err != nil {
		return nil, err
	}
	e := &engine{
		sc:            sc,
		seed:          seed,
		cfg:           cfg,
		hooks:         h,
		byPeer:        map[node.PeerID]int{},
		fp:            sha256.New(),
		convergedAt:   -1,
		reconnectedAt: -1,
		settle:        int64(sc.settle()),
	}
	e.end = e.settle + int64(sc.Quiet)
	if h, ok := sc.lastHeal(); ok {
		e.heal = int64(h)
	} else {
		e.heal = int64(sc.Duration)
	}
	e.healCover = e.heal < int64(sc.Duration)
	e.faultRNG = e.stream(streamFaults)
	e.stats.core = coreMetrics{}
	e.cfg.Metrics = &e.stats.core
	regionIdx := map[string]int{}
	for i, r := range sc.Regions {
		regionIdx[r.Name] = i
	}
	if sc.Storage == StorageBadger {
		if e.tmp, err = os.MkdirTemp("", "sessionmesh-sim-"); err != nil {
			return nil, fmt.Errorf("simulations: %w", err)
		}
	}
	for i, ns := range sc.Nodes {
		n := &simNode{
			idx:    i,
			name:   ns.Name,
			peer:   node.PeerID(ns.Name),
			region: regionIdx[ns.Region],
			start:  int64(ns.Start),
			clock:  vclock{off: int64(ns.Clock.Offset), ppm: ns.Clock.DriftPPM},
		}
		mode, err := persist.ParseDurability(ns.Durability)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("%w: node %s: %w", ErrScenario, ns.Name, err)
		}
		n.dur = durableState{mode: mode, interval: int64(persist.DefaultOptions("").SyncInterval)}
		n.sim = &simStore{e: e, n: n}
		n.coreSeeds = e.stream(streamCore, n.name)
		e.nodes = append(e.nodes, n)
		st, err := e.openStore(n, "store")
		if err != nil {
			e.close()
			return nil, err
		}
		if mode == persist.DurabilityNone {
			n.dur.phase = e.stream(streamDurability, n.name).Int64N(n.dur.interval)
			if n.dur.shadow, err = e.openStore(n, "shadow"); err != nil {
				_ = st.Close()
				e.close()
				return nil, err
			}
		}
		n.store = st
		e.byPeer[n.peer] = i
	}
	e.net = newNetwork(sc, e.nodes, e.stream)
	if e.cfg.Replicas > 0 {
		e.part = newPartialSim(e)
	}
	e.chk = newChecker(e)
	e.wl = newWorkload(e)
	e.cw = newConsistencyWorkload(e)
	if err := e.scheduleFaults(); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func newNetwork(sc *Scenario, nodes []*simNode, stream func(string, ...string) *rand.Rand) *network {
	n := len(nodes)
	nw := &network{
		n:       n,
		base:    make([]linkParams, n*n),
		life:    newLifecycle(&sc.Network.Transport),
		block:   make([]int32, n*n),
		conns:   make([]conn, n*n),
		dialers: make([]dialer, n*n),
		rngs:    make([]*rand.Rand, n*n),
	}
	lat := map[[2]string]Latency{}
	for _, l := range sc.Latency {
		lat[regionPair(l.Between[0], l.Between[1])] = l
	}
	for a, na := range nodes {
		for b, nb := range nodes {
			ra, rb := sc.Regions[na.region], sc.Regions[nb.region]
			var p linkParams
			if ra.Name == rb.Name {
				p.delay, p.jitter = int64(*ra.Delay), int64(*ra.Jitter)
			} else {
				l := lat[regionPair(ra.Name, rb.Name)]
				p.delay, p.jitter = int64(l.Delay), int64(l.Jitter)
			}
			p.loss, p.dup = sc.Network.Loss, sc.Network.Duplicate
			nw.base[a*n+b] = p
			if a != b {
				nw.rngs[a*n+b] = stream(streamLink, na.name, nb.name)
				nw.dialers[a*n+b].rng = stream(streamDial, na.name, nb.name)
			}
		}
	}
	return nw
}

func (e *engine) close() {
	for _, n := range e.nodes {
		if n.store != nil {
			_ = n.store.Close()
		}
		if n.dur.shadow != nil {
			_ = n.dur.shadow.Close()
		}
	}
	if e.tmp != "" {
		_ = os.RemoveAll(e.tmp)
	}
}

// fail stops the run: the engine cannot go on (a store failed).
func (e *engine) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// localTime is node n's clock now.
func (e *engine) localTime(n *simNode) time.Time {
	return epoch.Add(time.Duration(n.clock.local(e.now)))
}

func (e *engine) at(t int64, fn func()) { e.q.push(t, fn) }

// fingerprint adds one event to the run's fingerprint.
func (e *engine) fingerprint(kind byte, a, b int, x, y int64) {
	var rec [1 + 8 + 4 + 4 + 8 + 8]byte
	rec[0] = kind
	binary.LittleEndian.PutUint64(rec[1:], uint64(e.now))
	binary.LittleEndian.PutUint32(rec[9:], uint32(a))
	binary.LittleEndian.PutUint32(rec[13:], uint32(b))
	binary.LittleEndian.PutUint64(rec[17:], uint64(x))
	binary.LittleEndian.PutUint64(rec[25:], uint64(y))
	e.fpBuf = append(e.fpBuf, rec[:]...)
	if len(e.fpBuf) >= 64<<10 {
		e.fp.Write(e.fpBuf)
		e.fpBuf = e.fpBuf[:0]
	}
}

// record appends to the trace (and the fingerprint, through its kind).
func (e *engine) record(ev TraceEvent) {
	ev.T = Duration(e.now)
	e.trace.add(ev)
}

// run executes the scenario to its end.
func (e *engine) run() {
	for _, n := range e.nodes {
		if n.start == 0 {
			e.startNode(n)
		} else {
			e.at(n.start, func() {
				e.record(TraceEvent{Kind: "join", Node: n.name})
				e.startNode(n)
				e.reconsiderAll()
			})
		}
	}
	// The initial mesh is connected from the start.
	for a := range e.nodes {
		for b := a + 1; b < len(e.nodes); b++ {
			if e.nodes[a].up && e.nodes[b].up {
				e.connect(a, b)
			}
		}
	}
	e.wl.start()
	e.cw.start()
	e.scheduleSamples()
	e.scheduleProbes()
	e.at(e.settle, func() {
		e.record(TraceEvent{Kind: "settle"})
		e.dirty = true
	})
	if e.healCover {
		e.at(e.heal, e.chk.healed)
	}
	e.at(e.heal, e.checkReconnected)
	for e.q.len() > 0 && e.err == nil {
		if e.q.nextAt() > e.end {
			break
		}
		ev := e.q.pop()
		e.now = ev.at
		e.stats.events++
		if ev.m != nil {
			e.deliver(ev.m)
			e.recycle(ev.m)
		} else {
			ev.fn()
		}
		if e.now >= e.settle && e.dirty {
			e.dirty = false
			e.checkConvergence()
		}
	}
	e.now = e.end
	if e.err == nil {
		e.dirty = true
		e.checkConvergence()
	}
}

// checkReconnected notes, from the heal on, when every two running nodes
// are connected again.
func (e *engine) checkReconnected() {
	if e.reconnectedAt >= 0 || e.now < e.heal {
		return
	}
	for a := range e.nodes {
		for b := a + 1; b < len(e.nodes); b++ {
			if e.nodes[a].up && e.nodes[b].up && !e.net.conn(a, b).up {
				return
			}
		}
	}
	e.reconnectedAt = e.now
}

// checkConvergence notes when every live node last came to hold the same
// digest.
func (e *engine) checkConvergence() {
	if e.part != nil {
		if e.now < e.part.nextConverge && e.now < e.end {
			e.dirty = true // look again later
			return
		}
		e.part.nextConverge = e.now + convergeEvery
	}
	if e.converged() {
		if e.convergedAt < 0 {
			e.convergedAt = e.now
		}
	} else {
		e.convergedAt = -1
	}
}

// converged reports whether the running nodes agree: the same digest
// everywhere, or under partial replication, as placement wants.
func (e *engine) converged() bool {
	if e.part != nil {
		return e.partConverged()
	}
	return e.distinctRoots() <= 1
}

// distinctRoots counts the different store digests among running nodes.
func (e *engine) distinctRoots() int {
	var roots []uint64
	for _, n := range e.nodes {
		if !n.up {
			continue
		}
		r := n.store.Root()
		seen := false
		for _, x := range roots {
			if x == r {
				seen = true
				break
			}
		}
		if !seen {
			roots = append(roots, r)
		}
	}
	return len(roots)
}

// startNode starts (or restarts) a node: a new core over its store.
func (e *engine) startNode(n *simNode) {
	n.inc++
	n.up = true
	n.ever = true
	n.tickArmed = false
	n.lastTick = e.now - 1
	cfg := e.cfg
	if cfg.Replicas > 0 {
		cfg.Region = e.sc.Regions[n.region].Name // placement is per region
	}
	n.core = node.NewCore(cfg, n.peer, n.sim, crdt.NodeID(n.idx+1), n.coreSeeds.Uint64(), e.localTime(n))
	e.membershipChanged()
	n.acks = map[uint64]node.Ack{}
	e.fingerprint('S', n.idx, 0, int64(n.inc), 0)
	e.dirty = true
	e.arm(n)
	// A starting node dials every member it knows (from its member list
	// or through any one bootstrap peer).
	for j := range e.nodes {
		if j != n.idx {
			e.startDialing(n.idx, j)
		}
	}
}

// crash drops the core with what it held in memory (pending batch,
// rounds, deferred deltas) and every connection; the store keeps what it
// acknowledged.
func (e *engine) crash(n *simNode) {
	if !n.up {
		return
	}
	n.up = false
	n.core = nil
	e.membershipChanged()
	e.chk.crashed(n)
	n.inc++
	n.tickGen++
	n.tickArmed = false
	e.fingerprint('C', n.idx, 0, int64(n.inc), 0)
	e.dirty = true
	for j := range e.nodes {
		if j == n.idx {
			continue
		}
		e.stopDialing(n.idx, j)
		c := e.net.conn(n.idx, j)
		if c.up {
			// The operating system resets the connections of a dead
			// process: the other end notices at once.
			e.disconnect(n.idx, j)
		}
		e.reconsider(n.idx, j)
	}
}

// arm makes sure node n gets a Tick when its core next needs one.
func (e *engine) arm(n *simNode) {
	if !n.up {
		return
	}
	next := n.core.Next()
	t := n.clock.trueAt(int64(next.Sub(epoch)))
	if t <= n.lastTick {
		// Never twice at one instant: a core whose Next does not move
		// past a Tick would otherwise spin.
		t = n.lastTick + int64(time.Millisecond)
	}
	t = max(t, e.now)
	if n.tickArmed && n.tickAt <= t {
		return
	}
	n.tickGen++
	n.tickArmed, n.tickAt = true, t
	gen := n.tickGen
	e.at(t, func() {
		if n.tickGen != gen || !n.up {
			return
		}
		n.tickArmed = false
		now := e.localTime(n)
		if n.core.Next().After(now) {
			e.arm(n)
			return
		}
		n.lastTick = e.now
		e.stats.ticks++
		e.fingerprint('T', n.idx, 0, 0, 0)
		n.core.Tick(now)
		e.dirty = true
		e.collect(n)
	})
}

// rearm forgets the armed tick (the clock changed) and arms again.
func (e *engine) rearm(n *simNode) {
	n.tickGen++
	n.tickArmed = false
	e.arm(n)
}

// collect carries out the work a core handed out, in the order Node does:
// storage (inline, through the same StorageOp.Run), then broadcasts to
// every connected peer and direct messages, then acknowledgements and
// remote changes to the checkers; then the storage results go back to the
// core, until it has nothing left.
func (e *engine) collect(n *simNode) { e.carry(n, n.core.Ready()) }

func (e *engine) carry(n *simNode, r Ready) {
	// One buffer for the storage results of every carry (taken, so that a
	// nested carry would get its own).
	results := e.results[:0]
	e.results = nil
	// The buffer goes back cleared (its results hold sessions), as far
	// as this carry used it: past that it is still zero.
	used := 0
	defer func() {
		clear(results[:used])
		e.results = results[:0]
	}()
	for {
		results = results[:0]
		for i := range r.Storage {
			op := &r.Storage[i] // not copied: a StorageOp is large
			var st node.Store = n.sim
			if op.Local {
				st = localStore{n.sim}
			}
			res := op.Run(context.Background(), st)
			if res.Err != nil && op.Kind == node.StoreApply && !errors.Is(res.Err, errDisk) {
				e.fail(fmt.Errorf("simulations: %s: store: %w", n.name, res.Err))
			}
			results = append(results, res)
		}
		used = max(used, len(results))
		e.dispatch(n, &r)
		if len(results) == 0 {
			break
		}
		now := e.localTime(n)
		for i := range results {
			n.core.Stored(now, results[i])
		}
		next := n.core.Ready()
		n.core.Recycle(r) // carried out: its slices serve a later Ready
		r = next
	}
	n.core.Recycle(r)
	e.arm(n)
}

// Ready is node.Ready.
type Ready = node.Ready

func (e *engine) dispatch(n *simNode, r *Ready) {
	for _, a := range r.Acks {
		n.acks[a.Ticket] = a
	}
	for _, b := range r.Broadcasts {
		p := e.payload(b)
		p.copies++ // held until every copy is sent
		for j := range e.nodes {
			if j != n.idx && e.net.conn(n.idx, j).up {
				e.send(n.idx, j, b, p)
			}
		}
		e.release(p)
	}
	for _, m := range r.Messages {
		j, ok := e.byPeer[m.To]
		if !ok {
			e.fail(fmt.Errorf("simulations: %s sent to unknown peer %q", n.name, m.To))
			continue
		}
		e.send(n.idx, j, m.Data, nil)
	}
	for i := range r.Changes {
		if ch := &r.Changes[i]; ch.Remote {
			e.chk.change(n, ch)
		}
	}
}

// scheduleSamples samples divergence every Sample.
func (e *engine) scheduleSamples() {
	step := int64(e.sc.Sample)
	var sample func()
	sample = func() {
		e.series = append(e.series, e.sample())
		if next := e.now + step; next <= e.end {
			e.at(next, sample)
		}
	}
	e.at(0, sample)
}

// memTableSize gives small meshes large memtables (fewer levels to search
// on every read) and large meshes small ones (memory).
func memTableSize(nodes int) int64 {
	return max(2<<20, min(64<<20, (128<<20)/int64(nodes)))
}
