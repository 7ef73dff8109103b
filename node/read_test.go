package node

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestGetAllocatesNothing: the edge read of a cached session, and of one
// field from it, allocates nothing when the caller asks for no version.
func TestGetAllocatesNothing(t *testing.T) {
	net := newMemNet()
	cfg := testConfig()
	cfg.Dial = net.dialer("alloc")
	clock := &offsetClock{}
	cfg.Clock = clock
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	fields := map[string][]byte{}
	for i := range 10 {
		fields[fmt.Sprintf("field-%d", i)] = []byte(fmt.Sprintf("value %d", i))
	}
	token, err := n.Create(ctx, WithFields(fields))
	if err != nil {
		t.Fatal(err)
	}
	var v string
	allocs := testing.AllocsPerRun(200, func() {
		s, err := n.Get(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		v, _ = s.GetString("field-3")
	})
	if v != "value 3" {
		t.Fatalf("field-3 = %q", v)
	}
	if allocs != 0 {
		t.Fatalf("Get + GetString: %v allocations per read, want 0", allocs)
	}
	// Nor with lazy touches pending, of this session or of others.
	other := mustCreate(t, n)
	clock.Advance(time.Second)
	for _, tk := range []string{token, other} {
		if err := n.Touch(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if n.core.touches.len() == 0 {
		t.Fatal("no lazy touch recorded")
	}
	allocs = testing.AllocsPerRun(200, func() {
		if _, err := n.Get(ctx, token); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Get with lazy touches pending: %v allocations per read, want 0", allocs)
	}
	// A reserved key reads as absent; a missing token is not found.
	s, _ := n.Get(ctx, token)
	if _, ok := s.GetString(internalPrefix + "owner"); ok {
		t.Fatal("an internal field is visible")
	}
	unknown, _ := newToken(cfg.Rand)
	if _, err := n.Get(ctx, unknown); err != ErrNotFound {
		t.Fatalf("Get of an unknown token: %v, want ErrNotFound", err)
	}
	// With a version asked for, the version is recorded.
	var ver Version
	if _, err := n.Get(WithVersion(ctx, &ver), token); err != nil || len(ver) == 0 {
		t.Fatalf("Get under WithVersion: %v, version %v", err, ver)
	}
}

func mustCreate(t *testing.T, n *Node) string {
	t.Helper()
	token, err := n.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return token
}
