package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A versioned write on a peer that does not hold the session (partial
// replication) must leave its version entry somewhere: the writer hands
// its copy off and drops it, so if its own copy dropped the entry (the
// write was change-only, guarded by the holders' version its copy did not
// cover) and the gossip was lost, no peer ever holds it and every
// versioned read of the writer's client is stale for good.
func TestNonHolderWriteKeepsItsEntry(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, nil)
	eventually(t, 5*time.Second, "placement", func() bool {
		for _, n := range c.nodes {
			if len(n.Placement().RegionMembers) != 3 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	var tok, id string
	var writer *Node
	var holders []*Node
	for writer == nil {
		nd := c.nodes[0]
		var err error
		tok, err = nd.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id, _ = SessionID(tok)
		holders = holders[:0]
		for _, n := range c.nodes {
			if n.core.HoldsID(id) {
				holders = append(holders, n)
			} else {
				writer = n
			}
		}
		if writer == c.nodes[0] {
			writer = nil // created on its non-holder: try another
		}
	}
	eventually(t, 5*time.Second, "the holders to store the create", func() bool {
		for _, h := range holders {
			if _, err := h.Store().Get(id); err != nil {
				return false
			}
		}
		return true
	})
	c.net.mu.Lock()
	c.net.loseGossip = func(from, _ PeerID) bool { return from == writer.ID() }
	c.net.mu.Unlock()
	var v Version
	if err := writer.Set(WithVersion(ctx, &v), tok, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the writer to hand off and drop its copy", func() bool {
		if _, err := writer.Store().Get(id); err == nil {
			return false
		}
		for _, h := range holders {
			s, err := h.Store().Get(id)
			if err != nil {
				return false
			}
			if _, ok := s.Get("k"); !ok {
				return false
			}
		}
		return true
	})
	for _, h := range holders {
		rv := v
		rctx, cancel := context.WithTimeout(WithVersion(ctx, &rv), 5*time.Second)
		_, err := h.Get(rctx, tok)
		cancel()
		if err != nil {
			s, _ := h.Store().Get(id)
			t.Fatalf("holder %s cannot serve the writer's version %v: %v (it holds %v)", h.ID(), v, err, s.Version())
		}
	}
}

// An acknowledged write on a peer that does not hold the session must not
// be lost by handoff: a holder that cannot store the handed-off copy (the
// merged session would exceed Limits.MaxSessionBytes) must not let the
// writer drop it.
func TestHandoffRefusedByHolderKeepsWrite(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, nil)
	eventually(t, 5*time.Second, "placement", func() bool {
		for _, n := range c.nodes {
			if len(n.Placement().RegionMembers) != 3 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	value := strings.Repeat("x", 60<<10)
	big := func(prefix string, n int) map[string][]byte {
		m := map[string][]byte{}
		for i := range n {
			m[fmt.Sprintf("%s%d", prefix, i)] = []byte(value)
		}
		return m
	}
	var tok, id string
	var writer *Node
	var holders []*Node
	for writer == nil {
		var err error
		tok, err = c.nodes[0].Create(ctx, WithFields(big("h", 6)))
		if err != nil {
			t.Fatal(err)
		}
		id, _ = SessionID(tok)
		holders = holders[:0]
		for _, n := range c.nodes {
			if n.core.HoldsID(id) {
				holders = append(holders, n)
			} else {
				writer = n
			}
		}
		if writer == c.nodes[0] {
			writer = nil
		}
	}
	eventually(t, 5*time.Second, "the holders to store the create", func() bool {
		for _, h := range holders {
			if _, err := h.Store().Get(id); err != nil {
				return false
			}
		}
		return true
	})
	err := writer.Save(ctx, tok, Save{Set: big("w", 4)})
	if err != nil {
		if !errors.Is(err, crdt.ErrTooLarge) {
			t.Fatalf("refused with %v, want crdt.ErrTooLarge", err)
		}
		return // refused up front: nothing acknowledged, nothing to lose
	}
	time.Sleep(40 * partConfig("eu", 2).HandoffInterval)
	if _, err := writer.Store().Get(id); err == nil {
		return // kept until a holder can take it
	}
	for _, h := range holders {
		if s, err := h.Store().Get(id); err == nil {
			if _, ok := s.Get("w0"); ok {
				return
			}
		}
	}
	t.Fatal("a write acknowledged on a non-holder is on no peer: the holders refused the handoff and the writer dropped its copy")
}

// The same when the session grows at its holders after the write: the
// writer's copy was within bounds when written, and a holder that refuses
// it must not acknowledge the handoff, or the writer drops its only copy.
func TestHandoffRefusedAfterGrowthKeepsWrite(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, func(cfg *Config) { cfg.HandoffInterval = 500 * time.Millisecond })
	eventually(t, 5*time.Second, "placement", func() bool {
		for _, n := range c.nodes {
			if len(n.Placement().RegionMembers) != 3 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	value := strings.Repeat("x", 60<<10)
	big := func(prefix string, n int) map[string][]byte {
		m := map[string][]byte{}
		for i := range n {
			m[fmt.Sprintf("%s%d", prefix, i)] = []byte(value)
		}
		return m
	}
	var tok, id string
	var writer *Node
	var holders []*Node
	for writer == nil {
		var err error
		tok, err = c.nodes[0].Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id, _ = SessionID(tok)
		holders = holders[:0]
		for _, n := range c.nodes {
			if n.core.HoldsID(id) {
				holders = append(holders, n)
			} else {
				writer = n
			}
		}
		if writer == c.nodes[0] {
			writer = nil
		}
	}
	eventually(t, 5*time.Second, "the holders to store the create", func() bool {
		for _, h := range holders {
			if _, err := h.Store().Get(id); err != nil {
				return false
			}
		}
		return true
	})
	c.net.mu.Lock()
	c.net.loseGossip = func(from, _ PeerID) bool { return from == writer.ID() }
	c.net.mu.Unlock()
	if err := writer.Save(ctx, tok, Save{Set: big("w", 4)}); err != nil {
		t.Fatalf("a write well within bounds: %v", err)
	}
	if err := holders[0].Save(ctx, tok, Save{Set: big("h", 5)}); err != nil {
		t.Fatalf("the holder's write: %v", err)
	}
	time.Sleep(2500 * time.Millisecond) // several handoff passes
	if _, err := writer.Store().Get(id); err == nil {
		return // kept: no holder could take it
	}
	for _, h := range holders {
		if s, err := h.Store().Get(id); err == nil {
			if _, ok := s.Get("w0"); ok {
				return
			}
		}
	}
	t.Fatal("a write acknowledged on a non-holder is on no peer: a holder refused the handed-off copy but acknowledged it, and the writer dropped it")
}
