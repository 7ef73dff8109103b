// Package meshtest starts real sessionmesh nodes for the tests of packages
// built on node (sessionhttp, scsstore, the examples): libp2p on 127.0.0.1,
// quiet logs, short anti-entropy intervals.
package meshtest

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/transport"
)

// Start starts count nodes, each bootstrapping to the first, and waits until
// every one sees the first (and the first sees them all). tweak, if given,
// adjusts node i's configuration. The nodes close when the test ends.
func Start(tb testing.TB, count int, tweak func(i int, cfg *node.Config)) []*node.Node {
	tb.Helper()
	var nodes []*node.Node
	var first *p2pnode.Node
	for i := range count {
		cfg := p2pnode.DefaultConfig()
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.SyncInterval = 200 * time.Millisecond
		cfg.SyncTimeout = 2 * time.Second
		if i > 0 {
			for _, a := range first.Transport().Addrs() {
				cfg.Transport.Bootstrap = append(cfg.Transport.Bootstrap, a.String())
			}
		}
		if tweak != nil {
			tweak(i, &cfg.Config)
		}
		n, err := p2pnode.Open(context.Background(), cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = n.Close(context.Background()) })
		if i == 0 {
			first = n
		}
		transports.Store(n.Node, n.Transport())
		tb.Cleanup(func() { transports.Delete(n.Node) })
		nodes = append(nodes, n.Node)
	}
	for _, n := range nodes[1:] {
		Eventually(tb, 15*time.Second, "nodes to connect", func() bool { return len(n.Peers()) >= 1 })
	}
	if count > 1 {
		Eventually(tb, 15*time.Second, "the first node to see every other", func() bool { return len(nodes[0].Peers()) == count-1 })
	}
	return nodes
}

var transports sync.Map // *node.Node -> *transport.Transport

// Transport returns the libp2p transport of a node Start started.
func Transport(n *node.Node) *transport.Transport {
	t, _ := transports.Load(n)
	return t.(*transport.Transport)
}

// Eventually polls cond until it holds, failing the test after within.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// OffsetClock is a node clock that tests move forward: the wall clock plus
// an offset, so that timers still fire.
type OffsetClock struct{ offset atomic.Int64 }

// Now implements node.Clock.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *OffsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
