package p2pnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// Partial replication over real libp2p hosts (Badger stores): with R = 1
// in a 4-peer region each session ends up on exactly one peer, and every
// peer reads and writes every session through its holder (hello, handoff
// and fetch messages over the transport's direct streams).
func TestLibp2pPartialReplication(t *testing.T) {
	c := startP2P(t, 4, true, func(cfg *Config) {
		cfg.Region = "eu"
		cfg.Replicas = 1
		cfg.HandoffInterval = 100 * time.Millisecond
		cfg.ConsistencyWait = 5 * time.Second
	})
	eventually(t, 10*time.Second, "placement over the 4 peers", func() bool {
		for _, n := range c.nodes {
			if len(n.Placement().RegionMembers) != 4 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	var tokens, ids []string
	for i := range 40 {
		tok, err := c.nodes[i%4].Create(ctx, node.WithFields(map[string][]byte{"v": []byte("0")}))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := node.SessionID(tok)
		tokens, ids = append(tokens, tok), append(ids, id)
	}
	copies := func(id string) int {
		n := 0
		for _, nd := range c.nodes {
			if _, err := nd.Store().Get(id); err == nil {
				n++
			}
		}
		return n
	}
	oneCopy := func() bool {
		for _, id := range ids {
			if copies(id) != 1 {
				return false
			}
		}
		return true
	}
	eventually(t, 20*time.Second, "one copy of each session, on its holder", oneCopy)
	for i, tok := range tokens {
		// Written on a peer that (3 times in 4) does not hold it.
		if err := c.nodes[(i+1)%4].Set(ctx, tok, "v", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "one copy of each session after the writes", oneCopy)
	for _, n := range c.nodes {
		for i, tok := range tokens {
			s, err := n.Get(ctx, tok)
			if err != nil {
				t.Fatalf("session %d on %s: %v", i, n.ID(), err)
			}
			if v, _ := s.GetString("v"); v != fmt.Sprint(i) {
				t.Fatalf("session %d on %s reads %q, want %q", i, n.ID(), v, fmt.Sprint(i))
			}
		}
	}
}
