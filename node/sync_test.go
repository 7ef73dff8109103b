package node

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

func TestSyncReportsWhatItRepaired(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	a, b := c.nodes[0], c.nodes[1]
	ctx := context.Background()
	// The rounds that the connection started must be over, or Sync joins
	// one of them.
	eventually(t, 5*time.Second, "first rounds", func() bool {
		for _, n := range c.nodes {
			if p := n.Peers(); len(p) != 1 || p[0].LastSync.IsZero() {
				return false
			}
		}
		return true
	})

	// Sessions only b holds, written under gossip's feet.
	now := time.Now()
	batch := crdt.NewBatch()
	for range 3 {
		tok, err := newToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := SessionID(tok)
		b.mu.Lock()
		ts := b.core.Stamp(now)
		b.mu.Unlock()
		d := crdt.Create(id, ts, now.Add(time.Hour), time.Hour)
		batch.Add(d)
	}
	if _, err := b.store.Apply(batch, now); err != nil {
		t.Fatal(err)
	}

	rep, err := a.Sync(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != SyncRepaired || rep.SessionsIn != 3 || rep.SessionsOut != 0 || rep.BytesIn == 0 || rep.BytesOut == 0 || !rep.Initiator || rep.Peer != b.ID() {
		t.Fatalf("first sync: %+v", rep)
	}
	if !c.converged() {
		t.Fatal("stores differ after a repaired round")
	}

	rep, err = a.Sync(ctx, "") // the only peer
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != SyncInSync || rep.SessionsIn != 0 || rep.Peer != b.ID() {
		t.Fatalf("second sync: %+v", rep)
	}

	if _, err := a.Sync(ctx, "nobody"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("sync with an unknown peer: %v", err)
	}
	c.net.partition(c.ids(0), c.ids(1))
	if _, err := a.Sync(ctx, ""); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("sync with no peer: %v", err)
	}
}

func TestSyncWithLostPeerFails(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.SyncTimeout = 300 * time.Millisecond
	})
	a, b := c.nodes[0], c.nodes[1]
	eventually(t, 5*time.Second, "first rounds", func() bool {
		p := a.Peers()
		return len(p) == 1 && !p[0].LastSync.IsZero()
	})
	// b's end goes silent without a.PeerDown: the round times out.
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Sync(context.Background(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result != SyncFailed || rep.Reason != "timeout" {
		t.Fatalf("sync with a silent peer: %+v", rep)
	}
}
