package p2pnode

import (
	"github.com/sessionmesh/sessionmesh/node"

	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/transport"
)

// These tests run real libp2p hosts on 127.0.0.1.

type p2pCluster struct {
	tb    testing.TB
	cfgs  []Config
	nodes []*Node
}

func (c *p2pCluster) addrs(upTo int) []string {
	var out []string
	for _, n := range c.nodes[:upTo] {
		if n == nil {
			continue
		}
		for _, a := range n.Transport().Addrs() {
			out = append(out, a.String())
		}
	}
	return out
}

// startP2P starts n nodes, each bootstrapping to every node before it, so
// the mesh is complete.
func startP2P(t testing.TB, n int, onDisk bool, tweak func(*Config)) *p2pCluster {
	t.Helper()
	c := &p2pCluster{tb: t}
	for i := range n {
		cfg := testConfig()
		if onDisk {
			cfg.DataDir = t.TempDir()
		}
		cfg.Transport.Bootstrap = c.addrs(i)
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.start(i)
	}
	c.waitMesh()
	return c
}

func (c *p2pCluster) start(i int) {
	c.tb.Helper()
	nd, err := Open(context.Background(), c.cfgs[i])
	if err != nil {
		c.tb.Fatal(err)
	}
	c.nodes[i] = nd
	c.tb.Cleanup(func() { _ = nd.Close(context.Background()) })
}

func (c *p2pCluster) waitMesh() {
	c.tb.Helper()
	for _, n := range c.nodes {
		eventually(c.tb, 15*time.Second, "peers and gossip mesh", func() bool {
			return len(n.Peers()) == len(c.nodes)-1 && len(n.Transport().MeshPeers()) > 0
		})
	}
}

func (c *p2pCluster) converged() bool {
	root := c.nodes[0].Store().Digests().Root
	for _, n := range c.nodes[1:] {
		if n.Store().Digests().Root != root {
			return false
		}
	}
	return true
}

// cut blocks every link between the two groups, in both directions.
func (c *p2pCluster) cut(left, right []int, block bool) {
	for _, a := range left {
		for _, b := range right {
			ta, tb := c.nodes[a].Transport(), c.nodes[b].Transport()
			if block {
				ta.Block(tb.ID())
				tb.Block(ta.ID())
			} else {
				ta.Unblock(tb.ID())
				tb.Unblock(ta.ID())
			}
		}
	}
}

func TestLibp2pReplication(t *testing.T) {
	c := startP2P(t, 3, false, nil)
	ctx := context.Background()
	token, err := c.nodes[1].Create(ctx, node.WithFields(map[string][]byte{"user": []byte("carol")}))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		eventually(t, 5*time.Second, "replication over gossip", func() bool {
			s, err := n.Get(ctx, token)
			v, _ := s.Get("user")
			return err == nil && string(v) == "carol"
		})
	}
	assertSameWinner(t, c.nodes, token, c.converged)
}

// TestLibp2pPartitionLongerThanGossipMemory cuts a 4-node mesh in two for
// longer than gossipsub remembers messages (about 3 s), writes on both
// sides, destroys a session on one side while the other keeps writing to
// it, heals, and checks that anti-entropy converges everything.
func TestLibp2pPartitionLongerThanGossipMemory(t *testing.T) {
	c := startP2P(t, 4, false, func(cfg *Config) { cfg.SyncInterval = time.Second })
	ctx := context.Background()
	shared, err := c.nodes[0].Create(ctx, node.WithFields(map[string][]byte{"a": []byte("0")}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "initial replication", c.converged)

	c.cut([]int{0, 1}, []int{2, 3}, true)
	written := map[string]string{}
	for i := range 40 {
		n := c.nodes[i%4]
		tk, err := n.Create(ctx, node.WithFields(map[string][]byte{"by": []byte(n.ID())}))
		if err != nil {
			t.Fatal(err)
		}
		written[tk] = string(n.ID())
	}
	if err := c.nodes[0].Destroy(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[3].Set(ctx, shared, "b", []byte("late write on the other side")); err != nil {
		t.Fatalf("the cut-off side must keep serving: %v", err)
	}
	time.Sleep(4 * time.Second) // longer than gossip's memory
	if c.converged() {
		t.Fatal("converged across the partition")
	}
	healed := time.Now()
	c.cut([]int{0, 1}, []int{2, 3}, false)
	eventually(t, 30*time.Second, "convergence after heal", c.converged)
	t.Logf("converged %v after heal", time.Since(healed).Round(time.Millisecond))
	assertAfterHeal(t, c.nodes, written, "by", shared)
}

func TestLibp2pRestartCatchesUp(t *testing.T) {
	c := startP2P(t, 3, true, nil)
	ctx := context.Background()
	before, _ := c.nodes[0].Create(ctx)
	eventually(t, 10*time.Second, "replication", c.converged)
	id := c.nodes[2].ID()
	if err := c.nodes[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	var missed []string
	for range 10 {
		tk, _ := c.nodes[0].Create(ctx, node.WithFields(map[string][]byte{"k": []byte("v")}))
		missed = append(missed, tk)
	}
	// Restart from the same data directory, with bootstrap peers.
	c.cfgs[2].Transport.Bootstrap = c.addrs(2)
	c.start(2)
	if c.nodes[2].ID() != id {
		t.Fatalf("peer id changed across restart: %s -> %s", id, c.nodes[2].ID())
	}
	if _, err := c.nodes[2].Get(ctx, before); err != nil {
		t.Fatalf("restarted node lost its data: %v", err)
	}
	eventually(t, 20*time.Second, "restarted node to catch up", func() bool {
		for _, tk := range missed {
			if _, err := c.nodes[2].Get(ctx, tk); err != nil {
				return false
			}
		}
		return true
	})
}

type nopHandler struct{}

func (nopHandler) HandleGossip(peer.ID, []byte) {}
func (nopHandler) HandleDirect(peer.ID, []byte) {}
func (nopHandler) PeerUp(peer.ID)               {}
func (nopHandler) PeerDown(peer.ID)             {}

// TestLibp2pBadInput publishes, from a raw transport in the mesh, a
// malformed batch, an oversized one and one stamped far in the future: none
// may change anything.
func TestLibp2pBadInput(t *testing.T) {
	c := startP2P(t, 2, false, nil)
	ctx := context.Background()
	tk, _ := c.nodes[0].Create(ctx)
	eventually(t, 10*time.Second, "replication", c.converged)
	root := c.nodes[1].Store().Digests().Root

	tc := transport.DefaultConfig()
	tc.Bootstrap = c.addrs(2)
	rogue, err := transport.New(ctx, tc, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	eventually(t, 15*time.Second, "rogue to join the mesh", func() bool { return len(rogue.MeshPeers()) >= 2 })

	id, _ := node.SessionID(tk)
	s, err := c.nodes[0].Store().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	future := s.Set("k", []byte("from the future"), crdt.NewTimestamp(time.Now().Add(time.Hour).UnixMilli(), 0, 99))
	futureBatch, err := crdt.MarshalBatch(crdt.NewBatch(future), crdt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{
		[]byte("not a batch at all"),
		append([]byte{crdt.FormatVersion, 'b'}, 0xdc, 0xff, 0xff), // claims 65535 sessions
		futureBatch,
	} {
		if err := rogue.Broadcast(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := rogue.Broadcast(ctx, make([]byte, 2<<20)); err == nil {
		t.Fatal("an oversized message was published")
	}
	eventually(t, 10*time.Second, "rejections to be counted", func() bool {
		var rejected uint64
		for _, n := range c.nodes {
			for _, v := range n.Transport().Stats().GossipRejected {
				rejected += v
			}
		}
		return rejected >= 2*2 // both junk messages, on both nodes
	})
	// The future delta was well formed: accepted by the transport, deferred
	// by the node, merged nowhere.
	time.Sleep(200 * time.Millisecond)
	for _, n := range c.nodes {
		if got := n.Store().Digests().Root; got != root {
			t.Fatalf("bad input changed %s's store", n.ID())
		}
		s, _ := n.Get(ctx, tk)
		if _, ok := s.Get("k"); ok {
			t.Fatalf("a delta from the far future was merged on %s", n.ID())
		}
	}
}

// TestLibp2pOutsiderRefused: a node with another pre-shared key cannot
// connect and receives nothing.
func TestLibp2pOutsiderRefused(t *testing.T) {
	psk := make([]byte, 32)
	for i := range psk {
		psk[i] = byte(i)
	}
	c := startP2P(t, 2, false, func(cfg *Config) { cfg.Transport.PSK = psk })
	ctx := context.Background()
	tk, _ := c.nodes[0].Create(ctx)

	cfg := testConfig()
	cfg.Transport.PSK = make([]byte, 32) // a different key
	cfg.Transport.Bootstrap = c.addrs(2)
	outsider, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close(ctx)
	time.Sleep(2 * time.Second)
	if len(outsider.Peers()) != 0 {
		t.Fatalf("outsider connected to %v", outsider.Peers())
	}
	if _, err := outsider.Get(ctx, tk); !errors.Is(err, node.ErrNotFound) {
		t.Fatal("outsider received a session")
	}
}

// TestLibp2pCloseFlushesPending: a write still waiting in the batcher when
// the node closes is sent before the node goes.
func TestLibp2pCloseFlushesPending(t *testing.T) {
	c := startP2P(t, 2, false, func(cfg *Config) {
		cfg.FlushDelay = time.Hour // only Close can flush
		cfg.SyncInterval = time.Hour
	})
	ctx := context.Background()
	tk, err := c.nodes[0].Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[1].Get(ctx, tk); err == nil {
		t.Fatal("delta left the batcher before its delay")
	}
	if err := c.nodes[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the flushed delta to arrive", func() bool {
		_, err := c.nodes[1].Get(ctx, tk)
		return err == nil
	})
}
