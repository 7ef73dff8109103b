package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// A hand-driven run of Cores on one goroutine with virtual time: the shape
// the simulator builds on. Messages are delivered in FIFO order unless a
// link is cut, in which case they are lost.

type envelope struct {
	from, to PeerID
	gossip   bool
	data     []byte
}

type coreRun struct {
	t     *testing.T
	now   time.Time
	ids   []PeerID
	cores map[PeerID]*Core
	queue []envelope
	cut   map[PeerID]int // partition side; different sides cannot talk
	trace []byte
}

func newCoreRun(t *testing.T, n int, seed uint64) *coreRun {
	r := &coreRun{t: t, now: time.UnixMilli(1_700_000_000_000), cores: map[PeerID]*Core{}, cut: map[PeerID]int{}}
	cfg := quietConfig()
	cfg.SyncInterval = time.Second
	cfg.SyncTimeout = 3 * time.Second // rounds cut off by the partition end sooner
	for i := range n {
		id := PeerID(fmt.Sprintf("p%d", i))
		o := persist.InMemoryOptions()
		o.Logger = cfg.Logger
		o.GCInterval = 0
		st, err := persist.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		r.ids = append(r.ids, id)
		r.cores[id] = NewCore(cfg, id, st, crdt.NodeID(i+1), seed, r.now)
	}
	for _, a := range r.ids {
		for _, b := range r.ids {
			if a != b {
				r.cores[a].PeerUp(r.now, b)
				r.collect(a)
			}
		}
	}
	return r
}

func (r *coreRun) linked(a, b PeerID) bool { return r.cut[a] == r.cut[b] }

func (r *coreRun) collect(from PeerID) {
	c := r.cores[from]
	rd := c.Ready()
	for len(rd.Storage) > 0 {
		// Storage first, as Node does; its results may bring more work.
		r.send(from, rd)
		for _, op := range rd.Storage {
			c.Stored(r.now, op.Run(context.Background(), c.store))
		}
		rd = c.Ready()
	}
	r.send(from, rd)
}

func (r *coreRun) send(from PeerID, rd Ready) {
	for _, b := range rd.Broadcasts {
		for _, to := range r.ids {
			if to != from {
				r.queue = append(r.queue, envelope{from: from, to: to, gossip: true, data: b})
			}
		}
	}
	for _, m := range rd.Messages {
		r.queue = append(r.queue, envelope{from: from, to: m.To, data: m.Data})
	}
}

// run advances virtual time to until, delivering messages and ticks.
func (r *coreRun) run(until time.Time) {
	for {
		for len(r.queue) > 0 {
			e := r.queue[0]
			r.queue = r.queue[1:]
			if !r.linked(e.from, e.to) {
				continue
			}
			sum := sha256.Sum256(e.data)
			r.trace = fmt.Appendf(r.trace, "%d %s>%s %x\n", r.now.UnixMilli(), e.from, e.to, sum[:4])
			c := r.cores[e.to]
			var err error
			if e.gossip {
				err = c.ReceiveGossip(r.now, e.from, e.data)
			} else {
				err = c.ReceiveDirect(r.now, e.from, e.data)
			}
			if err != nil {
				r.t.Fatalf("%s from %s: %v", e.to, e.from, err)
			}
			r.collect(e.to)
		}
		next := until
		for _, id := range r.ids {
			if n := r.cores[id].Next(); n.Before(next) {
				next = n
			}
		}
		if next.After(until) || next.Equal(until) && r.now.Equal(until) {
			r.now = until
			return
		}
		r.now = later(r.now, next)
		for _, id := range r.ids {
			if !r.cores[id].Next().After(r.now) {
				r.cores[id].Tick(r.now)
				r.collect(id)
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// write creates a session on a core, as Node does.
func (r *coreRun) write(on PeerID, id string, fields int) {
	c := r.cores[on]
	set := map[string][]byte{}
	for i := range fields {
		set[fmt.Sprintf("f%d", i)] = []byte(on)
	}
	if _, err := c.Local(r.now, LocalOp{Kind: OpCreate, ID: id, Set: set, Idle: 30 * time.Minute, Lifetime: time.Hour}); err != nil {
		r.t.Fatal(err)
	}
	r.collect(on)
}

func (r *coreRun) converged() bool {
	root := r.cores[r.ids[0]].store.Digests().Root
	for _, id := range r.ids[1:] {
		if r.cores[id].store.Digests().Root != root {
			return false
		}
	}
	return true
}

func (r *coreRun) scenario() {
	for i := range 20 {
		r.write(r.ids[i%len(r.ids)], fmt.Sprintf("s%02d", i), 3)
	}
	r.run(r.now.Add(100 * time.Millisecond))
	if !r.converged() {
		r.t.Fatal("gossip did not replicate to every core")
	}
	r.cut[r.ids[0]], r.cut[r.ids[1]] = 1, 1 // {p0,p1} | {p2,p3}
	for _, id := range r.ids {
		r.cores[id].Tick(r.now)
	}
	for i := range 20 {
		r.write(r.ids[i%len(r.ids)], fmt.Sprintf("cut-%02d", i), 2)
	}
	r.run(r.now.Add(10 * time.Second))
	if r.converged() {
		r.t.Fatal("converged across a partition")
	}
	clear(r.cut)
	r.run(r.now.Add(10 * time.Second)) // periodic rounds repair, with no PeerUp
}

func TestCoreRunIsDeterministicAndConverges(t *testing.T) {
	a := newCoreRun(t, 4, 42)
	a.scenario()
	if !a.converged() {
		t.Fatal("anti-entropy did not repair the partition")
	}
	b := newCoreRun(t, 4, 42)
	b.scenario()
	if string(a.trace) != string(b.trace) {
		t.Fatal("same seed and events gave different message traces")
	}
	c := newCoreRun(t, 4, 7)
	c.scenario()
	if string(a.trace) == string(c.trace) {
		t.Fatal("the seed has no effect on peer choice")
	}
}

// TestBusyResponderFreesInitiator: a responder at its round limit answers
// busy, and the initiator's round ends at once instead of at its timeout.
func TestBusyResponderFreesInitiator(t *testing.T) {
	r := newCoreRun(t, 3, 1)
	r.run(r.now.Add(5 * time.Second))
	for _, c := range r.cores {
		c.cfg.MaxConcurrentSyncs = 1
	}
	p0, p1, p2 := r.cores[r.ids[0]], r.cores[r.ids[1]], r.cores[r.ids[2]]
	r.write(r.ids[1], "x", 1) // roots differ from here on
	r.write(r.ids[0], "y", 1)
	r.queue = nil // nothing delivered: every pair differs
	p1.startRound(r.now, r.ids[2], false)
	r.collect(r.ids[1])
	first := r.queue[0]
	r.queue = nil
	if err := p2.ReceiveDirect(r.now, r.ids[1], first.data); err != nil { // p2 now has a round with p1
		t.Fatal(err)
	}
	_ = p2.Ready()
	p0.startRound(r.now, r.ids[2], false)
	root := p0.Ready().Messages[0]
	if err := p2.ReceiveDirect(r.now, r.ids[0], root.Data); err != nil {
		t.Fatal(err)
	}
	reply := p2.Ready().Messages
	if len(reply) != 1 || reply[0].Data[1] != kindBusy {
		t.Fatalf("busy responder answered %v", reply)
	}
	if err := p0.ReceiveDirect(r.now, r.ids[2], reply[0].Data); err != nil {
		t.Fatal(err)
	}
	if len(p0.rounds) != 0 {
		t.Fatal("the initiator kept its round after a busy answer")
	}
}

// A local write made on a stored state is stamped after every stamp of
// that state, even before the Core has seen the store's result for the
// peer's delta that brought it (the store shows a merged state as soon as
// it commits, and Core.Stored comes after): stamped before, the write lost
// to the state it was made on, at its own peer.
func TestLocalWriteFollowsTheStateItIsMadeOn(t *testing.T) {
	cfg := testConfig()
	now := time.UnixMilli(1_700_000_000_000)
	c, _ := memCore(t, cfg, now)
	peer := crdt.NewClock(2, cfg.MaxDrift)
	// The peer's clock runs ahead, within the drift bound.
	ahead := now.Add(cfg.MaxDrift / 2)
	stored := crdt.Create("s", peer.Now(ahead), now.Add(time.Hour), time.Hour)
	stored.Fields = stored.Fields.With("n", crdt.Field{Value: "199", TS: peer.Now(ahead)})
	if _, err := c.Local(now, LocalOp{Kind: OpUpdate, ID: "s", Stored: stored, Set: map[string][]byte{"n": []byte("200")}}); err != nil {
		t.Fatal(err)
	}
	r := c.Ready()
	if len(r.Storage) == 0 || r.Storage[0].Batch == nil {
		t.Fatalf("no storage for the write: %+v", r)
	}
	d := r.Storage[0].Batch.Get("s")
	f, ok := d.Fields.Get("n")
	if !ok || f.Value != "200" {
		t.Fatalf("the write's delta: %+v", d)
	}
	was, _ := stored.Fields.Get("n")
	if f.TS.Compare(was.TS) <= 0 {
		t.Fatalf("the write is stamped %v, not after the state it was made on (%v)", f.TS, was.TS)
	}
}
