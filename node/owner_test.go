package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOwnerListAndDestroy(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.Region = "eu" })
	ctx := context.Background()
	a, err := c.nodes[0].Create(ctx, WithOwner("alice"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.nodes[1].Create(ctx)
	if err := c.nodes[1].SetOwner(ctx, b, "alice"); err != nil {
		t.Fatal(err)
	}
	other, _ := c.nodes[1].Create(ctx, WithOwner("bob"))
	eventually(t, 5*time.Second, "replication", c.converged)
	idA, _ := SessionID(a)
	idB, _ := SessionID(b)
	for _, nd := range c.nodes {
		list, err := nd.OwnerSessions(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 {
			t.Fatalf("alice's sessions on %s: %+v", nd.ID(), list)
		}
		where := map[string]PeerID{}
		for _, o := range list {
			if o.Region != "eu" {
				t.Fatalf("region: %+v", o)
			}
			where[o.ID] = o.Peer
		}
		if where[idA] != c.nodes[0].ID() || where[idB] != c.nodes[1].ID() {
			t.Fatalf("where created: %+v", list)
		}
	}
	idOther, _ := SessionID(other)
	if err := c.nodes[0].DestroyOwned(ctx, "alice", idOther); !errors.Is(err, ErrNotFound) {
		t.Fatalf("destroying bob's session as alice's: %v", err)
	}
	if err := c.nodes[0].DestroyOwned(ctx, "alice", idB); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the destroy to replicate", func() bool {
		_, err := c.nodes[1].Get(ctx, b)
		return errors.Is(err, ErrNotFound)
	})
	// A renewed session stays the owner's and listed.
	a2, err := c.nodes[1].Renew(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	idA2, _ := SessionID(a2)
	list, _ := c.nodes[1].OwnerSessions(ctx, "alice")
	if len(list) != 1 || list[0].ID != idA2 {
		t.Fatalf("after renew: %+v", list)
	}
	// Owner ids are stored hashed: no record holds "alice".
	eventually(t, 5*time.Second, "the renew to replicate", c.converged)
	for _, nd := range c.nodes {
		st := nd.Store()
		id, _ := SessionID(a2)
		s, _ := st.Get(id)
		for k, f := range s.Fields.All() {
			if k == "alice" || f.Value == "alice" {
				t.Fatalf("owner stored in clear: %q=%q", k, f.Value)
			}
		}
	}
}

// Revocation under partition: one side revokes the owner while the other
// keeps using and writing the owner's sessions and creates a new one after
// the revocation; after heal, the old sessions are gone everywhere and the
// new one lives. The caller's session is kept (under a new token).
func TestOwnerRevokeUnderPartition(t *testing.T) {
	c := newCluster(t, 4, nil)
	ctx := context.Background()
	var old []string
	for i := range 4 {
		tok, err := c.nodes[i].Create(ctx, WithOwner("carol"), WithFields(map[string][]byte{"k": []byte("v")}))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, tok)
	}
	eventually(t, 5*time.Second, "replication", c.converged)
	c.net.partition(c.ids(0, 1), c.ids(2, 3))

	kept, err := c.nodes[0].RevokeOwner(ctx, "carol", old[0])
	if err != nil {
		t.Fatal(err)
	}
	if kept == "" || kept == old[0] {
		t.Fatalf("kept session token %q", kept)
	}
	for _, tok := range old {
		eventually(t, 5*time.Second, "the revocation on the revoking side", func() bool {
			_, err := c.nodes[1].Get(ctx, tok)
			return errors.Is(err, ErrNotFound)
		})
	}
	// The other side has not seen it: it keeps serving and writing.
	time.Sleep(50 * time.Millisecond) // the revocation is after every old create, by the HLC too
	for _, tok := range old[1:] {
		if err := c.nodes[2].Set(ctx, tok, "k", []byte("written on the other side")); err != nil {
			t.Fatalf("the other side must keep serving: %v", err)
		}
		if err := c.nodes[3].Touch(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := c.nodes[3].Create(ctx, WithOwner("carol"))
	if err != nil {
		t.Fatal(err)
	}
	renewedElsewhere, err := c.nodes[2].Renew(ctx, old[2])
	if err != nil {
		t.Fatal(err)
	}
	c.net.heal()
	eventually(t, 10*time.Second, "convergence after heal", c.converged)
	for _, nd := range c.nodes {
		for i, tok := range old {
			if _, err := nd.Get(ctx, tok); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s serves old session %d after the revocation: %v", nd.ID(), i, err)
			}
			if err := nd.Set(ctx, tok, "k", []byte("again")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s writes old session %d after the revocation: %v", nd.ID(), i, err)
			}
		}
		for _, tok := range []string{fresh, kept, renewedElsewhere} {
			if _, err := nd.Get(ctx, tok); err != nil {
				t.Fatalf("%s: a session created after the revocation: %v", nd.ID(), err)
			}
		}
		list, err := nd.OwnerSessions(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("%s lists %d live sessions of carol, want 3: %+v", nd.ID(), len(list), list)
		}
	}
}
