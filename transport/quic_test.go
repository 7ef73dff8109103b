package transport

import (
	"context"
	"testing"
	"time"
)

// Without a PSK, QUIC listen addresses work.
func TestQUIC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb := &recorder{}, &recorder{}
	cfg := testConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	a := startTransport(t, cfg, ra)
	for _, addr := range a.Addrs() {
		if addrKind(addr) != "quic" {
			t.Errorf("listening on %s", addr)
		}
	}
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, cfg, rb)
	waitMesh(t, map[*Transport][]*Transport{a: {b}, b: {a}})
	if err := a.Send(ctx, b.ID(), []byte("over quic")); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, []byte("gossip over quic")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery over QUIC", func() bool {
		return len(rb.directFrom(a.ID())) == 1 && ra.gossipCount(b.ID(), "gossip over quic") == 1
	})
}
