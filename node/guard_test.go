package node

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// counting records a node's counters and its broadcast batch sizes.
type counting struct {
	nopMetrics
	mu    sync.Mutex
	n     map[string]float64
	sizes []float64
}

func (c *counting) Add(name string, d float64, _ ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]float64{}
	}
	c.n[name] += d
}

func (c *counting) Observe(name string, v float64, _ ...string) {
	if name == "batch_bytes" {
		c.mu.Lock()
		c.sizes = append(c.sizes, v)
		c.mu.Unlock()
	}
}

func (c *counting) get(name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// takeSizes returns the batch sizes since the last call.
func (c *counting) takeSizes() []float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sizes
	c.sizes = nil
	return s
}

func wideFields(n int) map[string][]byte {
	f := map[string][]byte{}
	for i := range n {
		f[fmt.Sprintf("field-%02d", i)] = []byte(fmt.Sprintf("value of field %02d, some bytes", i))
	}
	return f
}

// Versioned writes from a covered state carry only what they change; the
// other peer takes their version entries (no fetch, no drop). An
// unversioned write, which no entry stands for, makes the next versioned
// write whole on each peer that merged it, and that whole write makes both
// covered again.
func TestChangeOnlyVersionedWrites(t *testing.T) {
	ms := []*counting{{}, {}}
	i := 0
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.Metrics = ms[i]
		cfg.SyncInterval = time.Hour // gossip only
		i++
	})
	ctx := context.Background()
	// The rounds of the start would bring the session as a state, which
	// no guard vouches for.
	c.awaitRounds(t)
	var v Version
	tok, err := c.nodes[0].Create(WithVersion(ctx, &v), WithFields(wideFields(32)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the create to replicate", c.converged)
	created := ms[0].takeSizes()
	if len(created) == 0 || created[0] < 1500 {
		t.Fatalf("the create broadcast %v bytes: not the whole session", created)
	}
	for n := range 5 {
		if err := c.nodes[0].Set(WithVersion(ctx, &v), tok, "counter", []byte(strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the writes to replicate", c.converged)
	for _, sz := range ms[0].takeSizes() {
		if sz > 400 {
			t.Fatalf("a batch of %v bytes for a one-field write of a 32-field session: whole state", sz)
		}
	}
	if got := ms[0].get("whole_state_writes"); got != 0 {
		t.Fatalf("%v whole-state writes from a covered session", got)
	}
	id, _ := SessionID(tok)
	s1, err := c.nodes[1].Store().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.Version().Covers(v) {
		t.Fatalf("node 1 holds the writes but not their version: %v, want %v", s1.Version(), v)
	}
	if !s1.Covered() {
		t.Fatal("node 1 merged only guarded deltas that met their guards, yet is not covered")
	}
	// Node 1 writes from its covered copy: change-only, and node 0 takes it.
	if err := c.nodes[1].Set(WithVersion(ctx, &v), tok, "counter", []byte("from 1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1's write to replicate", c.converged)
	if got := ms[1].get("whole_state_writes"); got != 0 {
		t.Fatalf("node 1 wrote the whole state %v times from a covered copy", got)
	}
	if s0, _ := c.nodes[0].Store().Get(id); !s0.Version().Covers(v) {
		t.Fatalf("node 0 did not take node 1's entry: %v, want %v", s0.Version(), v)
	}
	for i, m := range ms {
		if d, f := m.get("version_entries_dropped"), m.get("consistency_fetches"); d != 0 || f != 0 {
			t.Fatalf("node %d dropped %v entries and fetched %v times on a lossless network", i, d, f)
		}
	}
	// An unversioned write: no entry stands for it, on either peer.
	if err := c.nodes[0].Save(ctx, tok, Save{Set: map[string][]byte{"plain": []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the unversioned write to replicate", c.converged)
	for i, nd := range c.nodes {
		if s, _ := nd.Store().Get(id); s.Covered() {
			t.Fatalf("node %d still claims its copy covered after an unversioned write", i)
		}
	}
	if err := c.nodes[1].Set(WithVersion(ctx, &v), tok, "counter", []byte("whole")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the whole write to replicate", c.converged)
	if got := ms[1].get("whole_state_writes"); got != 1 {
		t.Fatalf("node 1 made %v whole-state writes after the unversioned one, want 1", got)
	}
	for i, nd := range c.nodes {
		if s, _ := nd.Store().Get(id); !s.Covered() || !s.Version().Covers(v) {
			t.Fatalf("node %d after the whole write: covered %v, version %v want %v", i, s.Covered(), s.Version(), v)
		}
	}
	if err := c.nodes[0].Set(WithVersion(ctx, &v), tok, "counter", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if got := ms[0].get("whole_state_writes"); got != 0 {
		t.Fatalf("node 0 wrote the whole state %v times though the whole write covered it", got)
	}
}

// After a restart no session is known covered: the first versioned write of
// a session carries the whole state, the next ones only what they change.
func TestFirstWriteAfterRestartIsWhole(t *testing.T) {
	net := newMemNet()
	dir := t.TempDir()
	open := func(m *counting) *Node {
		cfg := testConfig()
		cfg.DataDir = dir
		cfg.Metrics = m
		cfg.Dial = net.dialer("peer-0")
		nd, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	ctx := context.Background()
	first := &counting{}
	nd := open(first)
	tok, err := nd.Create(ctx, WithFields(wideFields(8)))
	if err != nil {
		t.Fatal(err)
	}
	for n := range 3 {
		if err := nd.Set(ctx, tok, "n", []byte(strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
	}
	if got := first.get("whole_state_writes"); got != 0 {
		t.Fatalf("%v whole-state writes before the restart", got)
	}
	if err := nd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again := &counting{}
	nd = open(again)
	defer nd.Close(ctx)
	id, _ := SessionID(tok)
	if s, err := nd.Store().Get(id); err != nil || s.Covered() {
		t.Fatalf("after a restart the session is known covered (%v)", err)
	}
	for n := range 3 {
		if err := nd.Set(ctx, tok, "n", []byte(strconv.Itoa(10+n))); err != nil {
			t.Fatal(err)
		}
	}
	if got := again.get("whole_state_writes"); got != 1 {
		t.Fatalf("%v whole-state writes after the restart, want 1 (the first)", got)
	}
	s, _ := nd.Get(ctx, tok)
	if x, _ := s.GetString("n"); x != "12" || len(s.Keys()) != 9 {
		t.Fatalf("after the restart: n=%q, %d keys", x, len(s.Keys()))
	}
}

// awaitRounds waits for the anti-entropy rounds of the start to end.
func (c *cluster) awaitRounds(t *testing.T) {
	eventually(t, 5*time.Second, "startup rounds", func() bool {
		for _, nd := range c.nodes {
			nd.mu.Lock()
			busy := len(nd.core.rounds)
			nd.mu.Unlock()
			if busy > 0 {
				return false
			}
		}
		return true
	})
}

// A change-only write that shows a peer it missed an earlier one (its guard
// fails there) makes that peer ask the writer for the session at once: the
// lost write and the version arrive without anti-entropy or a reader.
func TestGapFetchRepairsLostWrite(t *testing.T) {
	ms := []*counting{{}, {}}
	i := 0
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.Metrics = ms[i]
		cfg.SyncInterval = time.Hour // gossip only
		i++
	})
	c.awaitRounds(t)
	ctx := context.Background()
	tok, err := c.nodes[0].Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the create to replicate", c.converged)
	var v Version
	var lost atomic.Int64
	c.net.mu.Lock()
	c.net.loseGossip = func(PeerID, PeerID) bool { lost.Add(1); return true }
	c.net.mu.Unlock()
	if err := c.nodes[0].Set(WithVersion(ctx, &v), tok, "lost", []byte("1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the write's broadcast to be lost", func() bool { return lost.Load() > 0 })
	c.net.mu.Lock()
	c.net.loseGossip = nil
	c.net.mu.Unlock()
	if err := c.nodes[0].Set(WithVersion(ctx, &v), tok, "next", []byte("2")); err != nil {
		t.Fatal(err)
	}
	id, _ := SessionID(tok)
	eventually(t, 5*time.Second, "the gap to be filled", func() bool {
		s, err := c.nodes[1].Store().Get(id)
		if err != nil {
			return false
		}
		_, lost := s.Get("lost")
		return lost && s.Version().Covers(v)
	})
	if got := ms[1].get("gap_fetches"); got != 1 {
		t.Fatalf("%v gap fetches, want 1", got)
	}
	if got := ms[1].get("version_entries_dropped"); got != 1 {
		t.Fatalf("%v entries dropped, want 1", got)
	}
	if s, _ := c.nodes[1].Store().Get(id); !s.Covered() {
		t.Fatal("the fetched whole state of a covered writer left node 1 uncovered")
	}
}

// Two change-only writes delivered in the wrong order: the later one's
// entries wait (parked) while its guard fails and are taken once the
// earlier one arrives, before any fetch is due and with no anti-entropy.
func TestParkedEntriesTakenOnceGuardMet(t *testing.T) {
	r := newCoreRun(t, 2, 7)
	p0, p1 := r.ids[0], r.ids[1]
	r.write(p0, "s", 2)
	r.run(r.now.Add(50 * time.Millisecond))
	update := func(key string) {
		c := r.cores[p0]
		s, err := c.store.Get("s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Local(r.now, LocalOp{Kind: OpUpdate, ID: "s", Stored: s, Set: map[string][]byte{key: []byte("v")}}); err != nil {
			t.Fatal(err)
		}
		r.collect(p0)
		c.Flush()
		r.collect(p0)
	}
	update("a")
	update("b")
	var gossip []int
	for i, e := range r.queue {
		if e.gossip && e.to == p1 {
			gossip = append(gossip, i)
		}
	}
	if len(gossip) != 2 {
		t.Fatalf("%d gossip messages for %s, want 2", len(gossip), p1)
	}
	r.queue[gossip[0]], r.queue[gossip[1]] = r.queue[gossip[1]], r.queue[gossip[0]]
	fetches := 0
	for len(r.queue) > 0 {
		e := r.queue[0]
		r.queue = r.queue[1:]
		c := r.cores[e.to]
		var err error
		if e.gossip {
			err = c.ReceiveGossip(r.now, e.from, e.data)
		} else if k, _ := messageKind(e.data); k == kindFetch {
			fetches++
			continue
		} else {
			err = c.ReceiveDirect(r.now, e.from, e.data)
		}
		if err != nil {
			t.Fatal(err)
		}
		r.collect(e.to)
	}
	if fetches != 0 {
		t.Fatalf("%d fetches for writes that were only out of order", fetches)
	}
	want, _ := r.cores[p0].store.Get("s")
	got, _ := r.cores[p1].store.Get("s")
	if !got.Version().Equal(want.Version()) || !got.Equal(want) {
		t.Fatalf("after both writes: version %v, writer's %v", got.Version(), want.Version())
	}
	if len(r.cores[p1].parked) != 0 {
		t.Fatalf("%d deltas still parked", len(r.cores[p1].parked))
	}
}

// The sessions remembered for gap fetches and the parked deltas stay
// bounded, and age out.
func TestGapStateBounded(t *testing.T) {
	r := newCoreRun(t, 1, 3)
	c := r.cores[r.ids[0]]
	now := r.now
	ts := c.Stamp(now)
	for i := range maxGapFetches + 100 {
		d := crdt.Create(fmt.Sprintf("s%05d", i), ts, now.Add(time.Hour), time.Hour).Set("k", []byte("v"), ts)
		d.Guard = &crdt.Guard{Need: crdt.Version{{Node: 9, Time: ts.Time}}}
		c.park(now, d, true)
		c.repairGap(now, d.ID, d)
	}
	if len(c.parked) > maxGapFetches || len(c.gapFetches) > maxGapFetches {
		t.Fatalf("%d parked, %d gap fetches remembered: unbounded", len(c.parked), len(c.gapFetches))
	}
	later := now.Add(parkFor)
	c.sweepParked(later)
	d := crdt.Create("late", ts, now.Add(time.Hour), time.Hour).Set("k", []byte("v"), ts)
	c.repairGap(later, d.ID, d)
	if len(c.parked) != 0 || len(c.gapFetches) != 1 {
		t.Fatalf("after %v: %d parked, %d gap fetches remembered, want 0 and 1", parkFor, len(c.parked), len(c.gapFetches))
	}
}

// A parked delta retried while its guard still fails stays parked (the
// retry merges as no change at all), and is taken when what it waits for
// arrives.
func TestParkedSurvivesFailedRetry(t *testing.T) {
	r := newCoreRun(t, 2, 11)
	p0, p1 := r.ids[0], r.ids[1]
	r.write(p0, "s", 2)
	r.run(r.now.Add(50 * time.Millisecond))
	local := func(op LocalOp) {
		c := r.cores[p0]
		s, err := c.store.Get("s")
		if err != nil {
			t.Fatal(err)
		}
		op.ID, op.Stored = "s", s
		if _, err := c.Local(r.now, op); err != nil {
			t.Fatal(err)
		}
		r.collect(p0)
		c.Flush()
		r.collect(p0)
	}
	local(LocalOp{Kind: OpUpdate, Set: map[string][]byte{"a": []byte("1")}})
	local(LocalOp{Kind: OpUpdate, Set: map[string][]byte{"b": []byte("2")}})
	local(LocalOp{Kind: OpSave, Set: map[string][]byte{"plain": []byte("3")}}) // unversioned
	var gossip []envelope
	rest := r.queue[:0]
	for _, e := range r.queue {
		if e.gossip && e.to == p1 {
			gossip = append(gossip, e)
		} else {
			rest = append(rest, e)
		}
	}
	if len(gossip) != 3 {
		t.Fatalf("%d gossip messages, want 3", len(gossip))
	}
	// b (parked), the unversioned save (a change: the retry fails and
	// changes nothing), then a.
	r.queue = append(rest, gossip[1], gossip[2], gossip[0])
	for len(r.queue) > 0 {
		e := r.queue[0]
		r.queue = r.queue[1:]
		if k, _ := messageKind(e.data); !e.gossip && k == kindFetch {
			continue
		}
		c := r.cores[e.to]
		var err error
		if e.gossip {
			err = c.ReceiveGossip(r.now, e.from, e.data)
		} else {
			err = c.ReceiveDirect(r.now, e.from, e.data)
		}
		if err != nil {
			t.Fatal(err)
		}
		r.collect(e.to)
	}
	want, _ := r.cores[p0].store.Get("s")
	got, _ := r.cores[p1].store.Get("s")
	if !got.Equal(want) {
		t.Fatalf("after all three: version %v, writer's %v", got.Version(), want.Version())
	}
	if n := len(r.cores[p1].parked); n != 0 {
		t.Fatalf("%d deltas still parked", n)
	}
}
