package simulations

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
)

// Session consistency and revocation: clients that carry their session's
// version from node to node (node.WithVersion, X-Session-Version, the
// sessionhttp version cookie), each the owner of its session, and a
// revocation of every owner. Two checkers judge them:
//
//   - version_read_violations: a node that served a client carrying a
//     version (its copy covered the version, so it answered) showed it
//     less than the client had written: a field it wrote missing or old
//     (read-your-writes), or older than a previous read (monotonic reads).
//   - revoked_served: a node served a session of a revoked owner, created
//     before the revocation, after the revocation had reached it.
//
// Both are judged with the client's own record of what it wrote and when
// its sessions were created, and the revocation's stamp, not with the
// node's verdict.

// Check names of these checkers.
const (
	CheckVersionReads  = "version_read_violations"
	CheckRevokedServed = "revoked_served"
)

// ConsistencyWorkload configures clients that carry versions
// (Workload.Consistency).
type ConsistencyWorkload struct {
	// Clients is the number of clients, each an owner with one session at a
	// time; Rate their requests per second, each to a node drawn at random
	// among those up (no stickiness).
	Clients int     `yaml:"clients"`
	Rate    float64 `yaml:"rate"`
	// RevokeAt, when set, revokes every client's owner at that time on
	// RevokeOn (a node name; default the first node). Clients whose
	// session is then not found create a new one, on whichever node they
	// reach.
	RevokeAt *Duration `yaml:"revoke_at,omitempty"`
	RevokeOn string    `yaml:"revoke_on,omitempty"`
}

// versionWait is how long a node shown a version waits for it before
// answering stale (node.Config.ConsistencyWait), and versionPoll how often
// the simulated wait looks again.
const (
	versionWait = 200 * time.Millisecond
	versionPoll = 5 * time.Millisecond
	clientKeys  = 4
)

type vclient struct {
	idx     int
	owner   string
	id      string         // current session, "" before the first create
	created crdt.Timestamp // its create stamp
	version crdt.Version
	count   int // writes made to the current session
	// seen is the version of the last answer, for monotonic reads.
	seen crdt.Version
}

type consistencyWorkload struct {
	e       *engine
	rng     *rand.Rand // streamConsistency
	cfg     ConsistencyWorkload
	clients []*vclient
	// revokedAt is each owner's revocation stamp once acknowledged.
	revokedAt map[string]crdt.Timestamp

	served, stale, notFound, creates int64
	versionViolations, revokedServed int64
}

func newConsistencyWorkload(e *engine) *consistencyWorkload {
	cw := &consistencyWorkload{e: e, rng: e.stream(streamConsistency), revokedAt: map[string]crdt.Timestamp{}}
	if c := e.sc.Workload.Consistency; c != nil {
		cw.cfg = *c
	}
	for i := range cw.cfg.Clients {
		cw.clients = append(cw.clients, &vclient{idx: i, owner: "owner-" + strconv.Itoa(i)})
	}
	return cw
}

func (cw *consistencyWorkload) start() {
	if len(cw.clients) == 0 || cw.cfg.Rate <= 0 {
		return
	}
	for _, c := range cw.clients {
		cw.next(c)
	}
	if cw.cfg.RevokeAt != nil {
		cw.e.at(int64(*cw.cfg.RevokeAt), cw.revoke)
	}
}

func (cw *consistencyWorkload) next(c *vclient) {
	e := cw.e
	t := e.now + int64(cw.rng.ExpFloat64()/cw.cfg.Rate*float64(time.Second))
	if t >= int64(e.sc.Duration) {
		return
	}
	e.at(t, func() { cw.request(c, cw.pickNode(), e.now) })
}

// pickNode draws a node that is up, or nil.
func (cw *consistencyWorkload) pickNode() *simNode {
	var up []*simNode
	for _, n := range cw.e.nodes {
		if n.up && cw.e.ready(n) {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[cw.rng.IntN(len(up))]
}

// request serves one request of client c on node n, begun at began, and
// schedules the client's next one once it is answered.
func (cw *consistencyWorkload) request(c *vclient, n *simNode, began int64) {
	if cw.serve(c, n, began) {
		cw.next(c)
	}
}

// serve waits for the client's version as node.Node does, then reads and
// writes. It returns false when it is still waiting (a retry is
// scheduled).
func (cw *consistencyWorkload) serve(c *vclient, n *simNode, began int64) bool {
	e := cw.e
	if n == nil || !n.up {
		return true
	}
	now := e.localTime(n)
	if c.id == "" {
		cw.create(c, n, now)
		return true
	}
	st, err := n.store.Get(c.id)
	if err != nil {
		st = nil
	}
	if st == nil || (!st.IsDestroyed() && !st.Version().Covers(c.version)) {
		if time.Duration(e.now-began) >= versionWait {
			cw.stale++
			e.record(TraceEvent{Kind: "op", Node: n.name, Op: "versioned", Session: c.id, Result: "stale"})
			return true
		}
		e.at(e.now+int64(versionPoll), func() { cw.request(c, n, began) })
		return false
	}
	cur := e.visible(n, c.id, now)
	if cur != nil && (e.hooks == nil || !e.hooks.ignoreRevocation) {
		if revoked, err := node.Revoked(n.store.Get, cur); err != nil {
			e.fail(fmt.Errorf("simulations: %s: %w", n.name, err))
			return true
		} else if revoked {
			cur = nil
		}
	}
	if cur == nil {
		// Revoked, or expired: the client starts over.
		cw.notFound++
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: "versioned", Session: c.id, Result: "not_found"})
		cw.create(c, n, now)
		return true
	}
	cw.served++
	cw.checkServed(c, n, cur)
	// Increment: write the counter and one of the client's keys, through
	// the node's own update (Core.Local: a versioned write, change-only
	// and guarded from a covered copy, else the whole state).
	c.count++
	v := []byte(strconv.Itoa(c.count))
	op := node.LocalOp{Kind: node.OpUpdate, ID: c.id, Stored: cur,
		Set: map[string][]byte{"c": v, "k" + strconv.Itoa(c.count%clientKeys): v}}
	if e.hooks != nil && e.hooks.partialVersionedWrites {
		// Planted: the write carries its fields and version entry without
		// the state the entry stands for, and no guard.
		op = node.LocalOp{Kind: node.OpBuild, Build: func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
			ts := stamp()
			d := cur.Header()
			d.Fields = d.Fields.With("c", crdt.Field{Value: string(v), TS: ts})
			d.Fields = d.Fields.With("k"+strconv.Itoa(c.count%clientKeys), crdt.Field{Value: string(v), TS: ts})
			k, f := crdt.VersionField(ts)
			d.Fields = d.Fields.With(k, f)
			return []*crdt.Session{d}, nil
		}}
	}
	ds, ok := cw.local(n, now, op, c.id)
	if !ok {
		c.count--
		return true
	}
	c.version = cur.Version().Join(ds[0].Version())
	c.seen = c.version
	return true
}

// checkServed judges what node n showed client c.
func (cw *consistencyWorkload) checkServed(c *vclient, n *simNode, cur *crdt.Session) {
	e := cw.e
	if t, ok := cw.revokedAt[c.owner]; ok && c.created.Compare(t) < 0 {
		if rt, err := node.RevokedBefore(n.store.Get, ownerHashOf(c.owner)); err == nil && !rt.IsZero() {
			cw.revokedServed++
			e.chk.violation(CheckRevokedServed, n, c.id, "served a session created at %v of owner %s, revoked at %v, after the revocation reached this node", c.created, c.owner, t)
		}
	}
	want := strconv.Itoa(c.count)
	bad := ""
	if got, _ := cur.Get("c"); c.count > 0 && got != want {
		bad = fmt.Sprintf("counter %q, the client wrote %s", got, want)
	}
	for i := 1; i <= min(c.count, clientKeys) && bad == ""; i++ {
		// The last write of key k<j> was the greatest count ≡ j.
		last := c.count - (c.count-i)%clientKeys
		key := "k" + strconv.Itoa(last%clientKeys)
		if got, _ := cur.Get(key); got != strconv.Itoa(last) {
			bad = fmt.Sprintf("field %s = %q, the client wrote %d", key, got, last)
		}
	}
	if bad == "" && !cur.Version().Covers(c.seen) {
		bad = "older than the client's previous answer"
	}
	if bad != "" {
		cw.versionViolations++
		e.chk.violation(CheckVersionReads, n, c.id, "a node answering version %s showed %s", c.version, bad)
	}
}

// create gives client c a new session, owned, on node n.
func (cw *consistencyWorkload) create(c *vclient, n *simNode, now time.Time) {
	e := cw.e
	id := e.wl.newID(n)
	op := node.LocalOp{Kind: node.OpCreate, ID: id, Idle: e.cfg.IdleTimeout, Lifetime: e.cfg.AbsoluteLifetime,
		Extra: func(ds []*crdt.Session, ts crdt.Timestamp) []*crdt.Session {
			node.WithOwnerField(ds[0], ownerHashOf(c.owner), ts)
			return ds
		}}
	ds, ok := cw.local(n, now, op, id)
	if !ok {
		return
	}
	cw.creates++
	c.id, c.created, c.count = id, ds[0].Created, 0
	c.version, c.seen = ds[0].Version(), ds[0].Version()
}

// revoke revokes every client's owner on the configured node.
func (cw *consistencyWorkload) revoke() {
	e := cw.e
	n := e.nodes[0]
	for _, x := range e.nodes {
		if x.name == cw.cfg.RevokeOn {
			n = x
		}
	}
	if !n.up {
		e.record(TraceEvent{Kind: "op", Node: n.name, Op: "revoke", Result: "unavailable"})
		return
	}
	now := e.localTime(n)
	for _, c := range cw.clients {
		var t crdt.Timestamp
		op := node.LocalOp{Kind: node.OpBuild, Build: func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
			t = stamp()
			return []*crdt.Session{node.RevocationDelta(ownerHashOf(c.owner), t, e.cfg.Limits)}, nil
		}}
		if _, ok := cw.local(n, now, op, c.owner); ok {
			cw.revokedAt[c.owner] = t
		}
	}
}

// local runs a client's write through the node's own path (Core.Local,
// then the storage, broadcast and acknowledgement it hands out, as Node
// carries them out) and returns the deltas written once acknowledged.
func (cw *consistencyWorkload) local(n *simNode, now time.Time, op node.LocalOp, what string) ([]*crdt.Session, bool) {
	e := cw.e
	ev := TraceEvent{Kind: "op", Node: n.name, Op: "versioned", Session: what, Result: "refused"}
	ticket, err := n.core.Local(now, op)
	if err != nil || ticket == 0 {
		e.record(ev)
		return nil, false
	}
	e.collect(n)
	a, ok := n.acks[ticket]
	if !ok {
		e.fail(fmt.Errorf("simulations: %s: versioned write: no acknowledgement", n.name))
		return nil, false
	}
	delete(n.acks, ticket)
	if a.Err != nil || len(a.Deltas) == 0 {
		e.record(ev)
		return nil, false
	}
	ev.Result = "ok"
	e.record(ev)
	e.dirty = true
	return a.Deltas, true
}

// final checks, at the end, that no node holding a revocation serves a
// session it revoked, and that sessions created after it live.
func (cw *consistencyWorkload) final() {
	e := cw.e
	for _, c := range cw.clients {
		t, ok := cw.revokedAt[c.owner]
		if !ok || c.id == "" || c.created.Compare(t) < 0 {
			continue
		}
		for _, n := range e.nodes {
			if !n.up || e.convergedAt < 0 {
				continue
			}
			cur := e.visible(n, c.id, e.localTime(n))
			if cur == nil {
				continue // expired, or not here: the convergence check says
			}
			if revoked, _ := node.Revoked(n.store.Get, cur); revoked {
				cw.revokedServed++
				e.chk.violation(CheckRevokedServed, n, c.id, "a session created at %v, after its owner's revocation at %v, is refused", c.created, t)
			}
		}
	}
}

// ownerHashOf stands for node's owner hash: the simulator stores owners
// under their names.
func ownerHashOf(owner string) string { return owner }
