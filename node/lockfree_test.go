package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestStorageOutsideTheCoreLock: while a peer's store holds the write of a
// remote batch (a slow disk), the peer still takes local writes and reads:
// storage effects run outside the core's lock (issue 12, point 1). Were
// the remote write under the lock, the local Create would wait for it and
// fail at its deadline.
func TestStorageOutsideTheCoreLock(t *testing.T) {
	nodes, stores := hookCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	before, err := b.Create(ctx, WithFields(map[string][]byte{"k": []byte("before")}))
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	stores[1].setBefore(func(bt *crdt.Batch) error {
		for _, s := range bt.Sessions() {
			if s.Fields.Has("remote") {
				once.Do(func() { close(held) })
				<-release
			}
		}
		return nil
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	remote, err := a.Create(ctx, WithFields(map[string][]byte{"remote": []byte("from a")}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("a's write never reached b's store")
	}
	// b's store is now inside the remote write, and stays there. The local
	// calls run aside: one stuck on the core's lock would not see a
	// context's deadline.
	var local string
	done := make(chan error, 1)
	go func() {
		var err error
		if local, err = b.Create(ctx, WithFields(map[string][]byte{"k": []byte("local")})); err != nil {
			done <- fmt.Errorf("a local create: %w", err)
			return
		}
		if err := b.Set(ctx, before, "k", []byte("updated")); err != nil {
			done <- fmt.Errorf("a local update: %w", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("while a remote write is in the store: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("local writes wait for the remote write in the store: storage runs under the core's lock")
	}
	for tk, want := range map[string]string{local: "local", before: "updated"} {
		s, err := b.Get(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := s.GetString("k"); v != want {
			t.Fatalf("k = %q, want %q", v, want)
		}
	}
	if _, err := b.Get(ctx, remote); err != ErrNotFound {
		t.Fatalf("the held remote write is visible before it was stored: %v", err)
	}
	close(release)
	eventually(t, 30*time.Second, "the remote write stored once released", func() bool {
		s, err := b.Get(ctx, remote)
		v, _ := s.GetString("remote")
		return err == nil && v == "from a"
	})
}
