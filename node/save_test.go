package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Save writes, removes, sets the idle timeout (up or down) and records an
// access in one delta, replicated like any write.
func TestSave(t *testing.T) {
	c := newCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := context.Background()
	tok, err := a.Create(ctx, WithIdleTimeout(time.Minute), WithFields(map[string][]byte{"x": []byte("1"), "y": []byte("2")}))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := a.Get(ctx, tok)
	time.Sleep(5 * time.Millisecond)
	if err := a.Save(ctx, tok, Save{Set: map[string][]byte{"z": []byte("3")}, Remove: []string{"x"}, IdleTimeout: time.Hour, Touch: true}); err != nil {
		t.Fatal(err)
	}
	check := func(n *Node) bool {
		s, err := n.Get(ctx, tok)
		if err != nil {
			return false
		}
		_, hasX := s.Get("x")
		z, _ := s.GetString("z")
		return !hasX && z == "3" && s.Len() == 2 && s.IdleTimeout() == time.Hour && s.LastAccess().After(before.LastAccess())
	}
	if !check(a) {
		s, _ := a.Get(ctx, tok)
		t.Fatalf("after Save: keys %v idle %v", s.Keys(), s.IdleTimeout())
	}
	deadline := time.Now().Add(10 * time.Second)
	for !check(b) {
		if time.Now().After(deadline) {
			t.Fatal("the save never reached the other node")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Lowering: the shorter timeout holds on both peers, and the session
	// ends there after it, without a touch.
	if err := a.Save(ctx, tok, Save{IdleTimeout: 300 * time.Millisecond, Touch: true}); err != nil {
		t.Fatal(err)
	}
	if s, err := a.Get(ctx, tok); err != nil || s.IdleTimeout() != 300*time.Millisecond {
		t.Fatalf("after lowering: %v, idle %v, want 300ms", err, s.IdleTimeout())
	}
	lowered := func(n *Node) bool {
		s, err := n.Get(ctx, tok)
		return err == nil && s.IdleTimeout() == 300*time.Millisecond
	}
	for !lowered(b) {
		if time.Now().After(deadline) {
			t.Fatal("the lowered idle timeout never reached the other node")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	for _, n := range []*Node{a, b} {
		if _, err := n.Get(ctx, tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("session still visible past its lowered idle timeout: %v", err)
		}
	}
	if err := a.Save(ctx, "not-a-token", Save{Touch: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Save of an unknown token: %v", err)
	}
}

// Retire destroys a session in any state, and a token retired without
// ever existing here cannot be created afterwards; Stored shows records a
// reader cannot see.
func TestRetireAndStored(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := context.Background()
	tok, err := n.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keep := n.Now().Add(48 * time.Hour)
	if err := n.Retire(ctx, tok, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Retire: %v", err)
	}
	st, err := n.Stored(tok)
	if err != nil || !st.IsDestroyed() || st.Absolute != keep.UnixMilli() {
		t.Errorf("Stored after Retire: %+v, %v", st, err)
	}
	fresh := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := n.Stored(fresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stored of an unknown token: %v", err)
	}
	if err := n.Retire(ctx, fresh, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Create(ctx, WithToken(fresh)); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Create after Retire of an unknown token: %v", err)
	}
	if err := n.Retire(ctx, fresh, n.Now().Add(-time.Second)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Retire with a past deadline: %v", err)
	}
}
