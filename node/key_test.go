package node

import (
	"context"
	"errors"
	"testing"
	"time"
	"unsafe"
)

// A Key reaches the same session as its token, through every call that
// takes one; a malformed token has no Key, and the zero Key names nothing.
func TestKey(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := context.Background()
	tok, err := n.Create(ctx, WithIdleTimeout(time.Minute), WithFields(map[string][]byte{"x": []byte("1")}))
	if err != nil {
		t.Fatal(err)
	}
	k0, ok := KeyOf(tok)
	if !ok || k0.Token() != tok {
		t.Fatalf("KeyOf(%q) = %+v, %v", tok, k0, ok)
	}
	// A Key copied into a caller's buffer is the same Key, held there.
	var buf [KeyBytes]byte
	k := k0.CopyTo(&buf)
	if k != k0 || unsafe.StringData(k.Token()) != &buf[idLen] || unsafe.StringData(k.id) != &buf[0] {
		t.Fatalf("CopyTo: %+v (token in buf: %v), want %+v in buf", k, unsafe.StringData(k.Token()) == &buf[idLen], k0)
	}
	if (Key{}).CopyTo(&buf) != (Key{}) {
		t.Fatal("the zero Key copied is not the zero Key")
	}
	if err := n.SaveKey(ctx, k, Save{Set: map[string][]byte{"y": []byte("2")}, Touch: true}); err != nil {
		t.Fatal(err)
	}
	s, err := n.GetKey(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if y, _ := s.GetString("y"); y != "2" {
		t.Fatalf("GetKey after SaveKey: y = %q", y)
	}
	if s2, err := n.Get(ctx, tok); err != nil || s2.Len() != 2 {
		t.Fatalf("Get after SaveKey: %v, %d keys", err, s2.Len())
	}
	rec, err := n.StoredKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if rec2, _ := n.Stored(tok); rec2 == nil || rec2.ID != rec.ID {
		t.Fatalf("StoredKey and Stored disagree: %v, %v", rec, rec2)
	}
	if err := n.Destroy(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := n.GetKey(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetKey of a destroyed session: %v", err)
	}
	if err := n.SaveKey(ctx, k, Save{Touch: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SaveKey of a destroyed session: %v", err)
	}

	if _, ok := KeyOf("not a token"); ok {
		t.Fatal("KeyOf accepted a malformed token")
	}
	var zero Key
	if _, err := n.GetKey(ctx, zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetKey(zero): %v", err)
	}
	if _, err := n.StoredKey(zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StoredKey(zero): %v", err)
	}
	if err := n.SaveKey(ctx, zero, Save{Touch: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SaveKey(zero): %v", err)
	}
}
