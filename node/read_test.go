package node

import (
	"bytes"
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

// TestFieldsInto: FieldsInto leaves the caller's map equal to Fields,
// dropping keys the session lacks and never showing the node's own keys;
// it writes into the map's slices, not the session; once the map has held
// a session's keys, reading another session with the same keys into it
// allocates nothing.
func TestFieldsInto(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := context.Background()
	tenFields := func(tag string) map[string][]byte {
		f := map[string][]byte{}
		for i := range 10 {
			f[fmt.Sprintf("field-%d", i)] = []byte(fmt.Sprintf("%s value %d", tag, i))
		}
		return f
	}
	a, err := n.Create(ctx, WithFields(tenFields("a")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Create(ctx, WithFields(tenFields("b")))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetOwner(ctx, b, "alice"); err != nil { // an internal key
		t.Fatal(err)
	}
	small, err := n.Create(ctx, WithFields(map[string][]byte{"field-1": []byte("x"), "other": []byte("y")}))
	if err != nil {
		t.Fatal(err)
	}
	// b after a write (a session with changes on top of its packed base).
	if err := n.Update(ctx, b, map[string][]byte{"field-2": []byte("b new")}, "field-9"); err != nil {
		t.Fatal(err)
	}
	get := func(token string) Session {
		s, err := n.Get(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	same := func(what string, got, want map[string][]byte) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys %q, want %q", what, len(got), got, want)
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
				t.Fatalf("%s: %s = %q, want %q", what, k, g, v)
			}
		}
	}
	m := map[string][]byte{"stale": []byte("gone")}
	for _, tk := range []string{a, b, small, a, b} {
		s := get(tk)
		s.FieldsInto(m)
		same("FieldsInto", m, s.Fields())
	}
	// Writing the caller's copies changes nothing stored, nor a map that
	// Fields made, used as FieldsInto's map (its values share a buffer).
	for k := range m {
		m[k][0] = '#'
	}
	f := get(a).Fields()
	get(small).FieldsInto(f)
	same("FieldsInto a Fields map", f, map[string][]byte{"field-1": []byte("x"), "other": []byte("y")})
	same("b after writing the copies", get(b).Fields(), func() map[string][]byte {
		w := tenFields("b")
		w["field-2"] = []byte("b new")
		delete(w, "field-9")
		return w
	}())
	// Reading sessions of the same keys into the map allocates nothing.
	get(a).FieldsInto(m)
	sa := get(a)
	allocs := testing.AllocsPerRun(100, func() { sa.FieldsInto(m) })
	if allocs != 0 {
		t.Fatalf("FieldsInto a map that holds the keys: %v allocations, want 0", allocs)
	}
	same("after the reads", m, tenFields("a"))
}
