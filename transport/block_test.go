package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Block cuts a link for good (until Unblock): the connection closes,
// redials are refused, and gossip between the two does not flow even
// through a third host. Unblock heals it through the bootstrap redial.
func TestBlockUnblock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb, rc := &recorder{}, &recorder{}, &recorder{}
	a := startTransport(t, testConfig(), ra)
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, cfg, rb)
	cfg.Bootstrap = append(addrsOf(a), addrsOf(b)...)
	c := startTransport(t, cfg, rc) // a triangle: c relays between a and b
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})

	a.Block(b.ID())
	start := time.Now()
	waitFor(t, 5*time.Second, "a and b disconnected", func() bool {
		return !ra.isUp(b.ID()) && !rb.isUp(a.ID()) && len(a.Peers()) == 1 && len(b.Peers()) == 1
	})
	t.Logf("PeerDown on both sides %v after Block", time.Since(start))

	// Redials are refused, in both directions.
	if err := b.Connect(ctx, a.Addrs()[0]); err == nil {
		waitFor(t, 5*time.Second, "b's redial to be closed", func() bool { return len(b.Peers()) == 1 })
	}
	waitFor(t, 5*time.Second, "a refusing b", func() bool { return a.Stats().ConnectionsRefused > 0 })
	if err := a.Connect(ctx, b.Addrs()[0]); !errors.Is(err, ErrBlocked) {
		t.Errorf("a.Connect(b) while blocked: %v, want ErrBlocked", err)
	}
	if err := a.Send(ctx, b.ID(), []byte("x")); !errors.Is(err, ErrBlocked) {
		t.Errorf("a.Send(b) while blocked: %v, want ErrBlocked", err)
	}

	// A partition blocks on both sides; then gossip relayed by c is
	// ignored too.
	b.Block(a.ID())
	if err := a.Broadcast(ctx, []byte("a while blocked")); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, []byte("b while blocked")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c relaying and a, b ignoring", func() bool {
		return rc.gossipCount(a.ID(), "a while blocked") == 1 && rc.gossipCount(b.ID(), "b while blocked") == 1 &&
			a.Stats().GossipRejected[RejectBlocked] >= 1 && b.Stats().GossipRejected[RejectBlocked] >= 1
	})
	if n := rb.gossipCount(a.ID(), "a while blocked"); n != 0 {
		t.Errorf("b received a's gossip while blocked")
	}
	if n := ra.gossipCount(b.ID(), "b while blocked"); n != 0 {
		t.Errorf("a received b's gossip while blocked")
	}

	a.Unblock(b.ID())
	b.Unblock(a.ID())
	start = time.Now()
	waitFor(t, 10*time.Second, "a and b reconnected", func() bool { return ra.isUp(b.ID()) && rb.isUp(a.ID()) })
	reconnected := time.Since(start)
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})
	t.Logf("after Unblock: PeerUp %v, gossip mesh %v", reconnected, time.Since(start))
	if err := a.Broadcast(ctx, []byte("a after unblock")); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, []byte("b after unblock")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "gossip between a and b", func() bool {
		return rb.gossipCount(a.ID(), "a after unblock") == 1 && ra.gossipCount(b.ID(), "b after unblock") == 1
	})
	if err := a.Send(ctx, b.ID(), []byte("direct after unblock")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "direct after unblock", func() bool { return len(rb.directFrom(a.ID())) == 1 })
}
