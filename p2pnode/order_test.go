package p2pnode

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestGossipKeepsWriterOrder: a writer's deltas reach a peer in the order
// it sent them, so that no change-only delta finds its guard unmet and is
// parked (version_entries_dropped). One message per write (FlushDelay 0),
// sent back to back: gossipsub's asynchronous validation, one goroutine
// per message, delivered such pairs swapped.
func TestGossipKeepsWriterOrder(t *testing.T) {
	ms := []*countingMetrics{{}, {}}
	i := 0
	c := startP2P(t, 2, false, func(cfg *Config) {
		cfg.FlushDelay = 0
		cfg.Metrics = ms[i]
		i++
	})
	ctx := context.Background()
	tokens := make([]string, 4)
	for i := range tokens {
		tk, err := c.nodes[0].Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tk
	}
	eventually(t, 10*time.Second, "convergence", c.converged)
	// In rounds of 100 writes, each waiting for the peer to catch up, so
	// that no queue overflows: a delta lost on the way also leaves the next
	// one's guard unmet, and the drops are reported beside the count.
	for i := range 1200 {
		if err := c.nodes[0].Set(ctx, tokens[i%len(tokens)], fmt.Sprintf("k%d", i%50), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			eventually(t, 30*time.Second, "convergence", c.converged)
		}
	}
	if n := ms[1].total("version_entries_dropped"); n > 0 {
		s0, s1 := c.nodes[0].Transport().Stats(), c.nodes[1].Transport().Stats()
		t.Fatalf("the peer dropped the version entries of %v deltas (out of order); lost on the way: %v deltas not queued, %d RPCs dropped, %d messages undeliverable",
			n, ms[0].total("deltas_rejected"), s0.GossipDropped, s1.GossipUndeliverable)
	}
}
