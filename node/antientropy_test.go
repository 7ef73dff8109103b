package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// fill writes count sessions straight into a node's store, under gossip's
// feet, from index from; fields gives each that many fields of 40 bytes.
func fill(t testing.TB, n *Node, from, count, fields int) {
	t.Helper()
	now := n.Now()
	const per = 500
	for start := from; start < from+count; start += per {
		b := crdt.NewBatch()
		for i := start; i < min(start+per, from+count); i++ {
			n.mu.Lock()
			ts := n.core.Stamp(now)
			n.mu.Unlock()
			d := crdt.Create(fmt.Sprintf("%064d", i), ts, now.Add(time.Hour), time.Hour)
			for f := range fields {
				_, _ = d.Merge(d.Set(fmt.Sprintf("f%d", f), []byte(fmt.Sprintf("%040d", i)), ts))
			}
			b.Add(d)
		}
		if _, err := n.store.Apply(b, now); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFirstRounds waits until the rounds the connections started are over,
// so that a Sync starts its own.
func waitFirstRounds(t testing.TB, c *cluster) {
	t.Helper()
	eventually(t, 10*time.Second, "first rounds", func() bool {
		for _, n := range c.nodes {
			for _, p := range n.Peers() {
				if p.LastSync.IsZero() {
					return false
				}
			}
		}
		return true
	})
}

type queueMetrics struct {
	nopMetrics
	full atomic.Int64
}

func (m *queueMetrics) Add(name string, delta float64, _ ...string) {
	if name == "send_queue_waits" {
		m.full.Add(int64(delta))
	}
}

// A repair larger than every queue on the way: a direct queue of 2
// messages and chunks of 4 KiB. The round waits for room instead of
// dropping, and ends identical.
func TestRepairThroughFullQueue(t *testing.T) {
	defer func(n int) { directQueueLen = n }(directQueueLen)
	directQueueLen = 2
	m := &queueMetrics{}
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.SyncChunkBytes = 4 << 10
		cfg.Metrics = m
	})
	a, b := c.nodes[0], c.nodes[1]
	waitFirstRounds(t, c)
	fill(t, a, 0, 3000, 2)
	fill(t, b, 3000, 1000, 2)
	rep, err := a.Sync(context.Background(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != SyncRepaired || rep.SessionsOut != 3000 || rep.SessionsIn != 1000 {
		t.Fatalf("repair: %+v", rep)
	}
	if !c.converged() || a.store.(*persist.Store).Len() != 4000 {
		t.Fatal("stores differ after the repair")
	}
	if m.full.Load() == 0 {
		t.Fatal("the direct queue never filled: the test proves nothing")
	}
}

// Two large stores with scattered differences: summaries find them, and
// only the sessions that differ cross.
func TestRepairSendsOnlyWhatDiffers(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	a, b := c.nodes[0], c.nodes[1]
	waitFirstRounds(t, c)
	fill(t, a, 0, 5000, 1)
	if rep, err := a.Sync(context.Background(), b.ID()); err != nil || rep.Result != SyncRepaired || rep.SessionsOut != 5000 {
		t.Fatalf("first repair: %+v %v", rep, err)
	}
	// 20 new sessions on each side, 20 changed on a.
	fill(t, a, 10000, 20, 1)
	fill(t, b, 20000, 20, 1)
	now := a.Now()
	for i := range 20 {
		id := fmt.Sprintf("%064d", i*97)
		s, err := a.store.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		ts := a.core.Stamp(now)
		a.mu.Unlock()
		d := s.Header()
		_, _ = d.Merge(s.Set("changed", []byte("x"), ts))
		if _, err := a.store.Apply(crdt.NewBatch(d), now); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := a.Sync(context.Background(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	// b needs a's 20 new and 20 changed sessions, a needs b's 20 new ones;
	// b may also send its older copies of the changed ones, unless a's
	// answer reached it before it answered. Nothing else may cross.
	if rep.Result != SyncRepaired || rep.SessionsOut < 40 || rep.SessionsIn < 20 || rep.SessionsIn+rep.SessionsOut > 80 {
		t.Fatalf("scattered repair: %+v", rep)
	}
	if !c.converged() {
		t.Fatal("stores differ after the repair")
	}
}

// failingScans fails every bucket scan.
type failingScans struct{ Store }

func (failingScans) Buckets(context.Context, []int, func(*crdt.Session) error) error {
	return errors.New("disk on fire")
}

// A round whose bucket scan fails ends as failed, on both sides, never as
// repaired.
func TestFailedScanFailsTheRound(t *testing.T) {
	net := newMemNet()
	var nodes []*Node
	for i := range 2 {
		cfg := testConfig()
		cfg.SyncInterval = time.Hour
		cfg.Dial = net.dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		o := persist.InMemoryOptions()
		o.GCInterval = 0
		st, err := persist.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		var s Store = st
		if i == 1 {
			s = failingScans{st}
		}
		nd, err := New(context.Background(), cfg, s, st.Close)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nd.Close(context.Background()) })
		nodes = append(nodes, nd)
	}
	net.connectAll()
	c := &cluster{net: net, nodes: nodes}
	waitFirstRounds(t, c)
	fill(t, nodes[0], 0, 10, 1)
	fill(t, nodes[1], 10, 10, 1)
	rep, err := nodes[0].Sync(context.Background(), nodes[1].ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != SyncFailed || rep.Reason != "peer_failed" {
		t.Fatalf("round with a failing peer store: %+v", rep)
	}
}

// A peer of the previous protocol is refused with a clear error.
func TestOldProtocolRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	old, err := encodeMsg(kindRoot, &rootMsg{Round: 1, Root: 42})
	if err != nil {
		t.Fatal(err)
	}
	old[0] = 1
	c.nodes[0].mu.Lock()
	err = c.nodes[0].core.ReceiveDirect(time.Now(), "old-peer", old)
	r := c.nodes[0].core.Ready()
	c.nodes[0].mu.Unlock()
	if !errors.Is(err, ErrOldProtocol) || len(r.Messages) != 0 {
		t.Fatalf("version 1 root: %v, %d replies", err, len(r.Messages))
	}
}

// Lazy touches of sessions destroyed since, or expired, leave nothing
// behind, and a node without pending touches reads without the table's
// lock.
func TestTouchesDoNotLeak(t *testing.T) {
	clock := &offsetClock{}
	c := newCluster(t, 1, func(cfg *Config) {
		cfg.Clock = clock
		cfg.GCInterval = 50 * time.Millisecond
	})
	n := c.nodes[0]
	ctx := context.Background()
	var tokens []string
	for range 200 {
		tok, err := n.Create(ctx, WithIdleTimeout(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	clock.Advance(time.Second)
	for _, tok := range tokens {
		if err := n.Touch(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.core.touches.len(); got != 200 {
		t.Fatalf("%d lazy touches, want 200", got)
	}
	for _, tok := range tokens[:100] {
		if err := n.Destroy(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.core.touches.len(); got != 100 {
		t.Fatalf("%d lazy touches after 100 destroys, want 100", got)
	}
	// The others expire unread: the collection pass sweeps them.
	clock.Advance(2 * time.Hour)
	eventually(t, 5*time.Second, "the sweep", func() bool { return n.core.touches.len() == 0 })
}
