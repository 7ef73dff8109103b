package node

import (
	"context"
	"testing"
	"time"
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
