package node

import (
	"context"
	"testing"
	"time"
)

// Monotonic reads of another client's write: a change-only delta whose
// guard fails at a peer merges nothing there until the peer holds what the
// guard asks, so a client never sees at one peer a field that a peer whose
// version covers the first one's may lack.
func TestMonotonicReadAfterDroppedEntry(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	c.awaitRounds(t)
	ctx := context.Background()
	w, p, q := c.nodes[0], c.nodes[1], c.nodes[2]
	tok, err := w.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the create to replicate", c.converged)
	id, _ := SessionID(tok)
	has := func(nd *Node, key string) bool {
		s, err := nd.Store().Get(id)
		if err != nil {
			return false
		}
		_, ok := s.Get(key)
		return ok
	}
	lose := func(to PeerID) {
		c.net.mu.Lock()
		c.net.loseGossip = func(from, dst PeerID) bool { return from == w.ID() && dst == to }
		c.net.mu.Unlock()
	}
	// Writer 0's first write reaches q only.
	lose(p.ID())
	var wv Version
	if err := w.Set(WithVersion(ctx, &wv), tok, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a to reach q", func() bool { return has(q, "a") })
	// Its second reaches p only, and p cannot ask the writer for the gap.
	lose(q.ID())
	c.net.mu.Lock()
	c.net.cut[[2]PeerID{p.ID(), w.ID()}] = true
	c.net.mu.Unlock()
	if err := w.Set(WithVersion(ctx, &wv), tok, "b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// p holds the create only: b's guard asks for a, so b waits there
	// whole, fields included (showing b under a version that does not
	// stand for it would let a covering peer answer without it).
	eventually(t, 5*time.Second, "b to wait at p", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		_, ok := p.core.parked[id]
		return ok
	})

	// A client reads on p, then on q with the version p gave it: whatever
	// p showed, q shows.
	var v Version
	s, err := p.Get(WithVersion(ctx, &v), tok)
	if err != nil {
		t.Fatal(err)
	}
	shown := s.Keys()
	rctx, cancel := context.WithTimeout(WithVersion(ctx, &v), 2*time.Second)
	defer cancel()
	s, err = q.Get(rctx, tok)
	if err != nil {
		t.Fatalf("q with the version p gave: %v", err)
	}
	for _, k := range shown {
		if _, ok := s.Get(k); !ok {
			t.Fatalf("monotonic reads broken: the client saw %q on p (version %v), then q (version %v) answered without it", k, v, s.Version())
		}
	}
	if _, ok := s.GetString("b"); ok {
		t.Fatal("q shows b, which never reached it")
	}

	// Once p can ask the writer, the gap fills and b shows there.
	c.net.mu.Lock()
	delete(c.net.cut, [2]PeerID{p.ID(), w.ID()})
	c.net.mu.Unlock()
	eventually(t, 5*time.Second, "a and b at p", func() bool { return has(p, "a") && has(p, "b") })
}
