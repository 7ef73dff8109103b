package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every token has one spelling: the unused low bits of its last base64
// character must be zero, or another cookie string would open the session.
func TestTokenHasOneSpelling(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := context.Background()
	token, err := n.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	opened := 0
	for _, ch := range alphabet {
		variant := token[:len(token)-1] + string(ch)
		if _, err := n.Get(ctx, variant); err == nil {
			opened++
			if variant != token {
				t.Errorf("%q opens the session of %q", variant, token)
			}
		}
	}
	if opened != 1 {
		t.Fatalf("%d spellings open the session, want 1", opened)
	}
	// A lax decoder would accept these too.
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	if padded := base64.URLEncoding.EncodeToString(raw); padded != token {
		if _, err := n.Get(ctx, padded); !errors.Is(err, ErrNotFound) {
			t.Fatalf("padded spelling: %v", err)
		}
	}
}

// A new session may start with as many fields as an existing one may grow
// to.
func TestCreateWithMaxFields(t *testing.T) {
	const max = 8
	c := newCluster(t, 1, func(cfg *Config) { cfg.MaxFields = max })
	n := c.nodes[0]
	ctx := context.Background()
	fields := func(k int) map[string][]byte {
		f := make(map[string][]byte, k)
		for i := range k {
			f[fmt.Sprintf("f%02d", i)] = []byte("v")
		}
		return f
	}
	token, err := n.Create(ctx, WithFields(fields(max)))
	if err != nil {
		t.Fatalf("create with %d fields: %v", max, err)
	}
	s, err := n.Get(ctx, token)
	if err != nil || len(s.Keys()) != max {
		t.Fatalf("got %d fields, %v", len(s.Keys()), err)
	}
	if _, err := n.Create(ctx, WithFields(fields(max+1))); !errors.Is(err, ErrTooManyFields) {
		t.Fatalf("create with %d fields: %v", max+1, err)
	} else if want := fmt.Sprintf("%d fields, limit %d", max+1, max); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// TestSessionIDVector pins the id of a known token (base64url of the
// SHA-256 of its bytes): stored sessions and every peer depend on it.
func TestSessionIDVector(t *testing.T) {
	id, ok := SessionID("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	if !ok || id != "Yw3NKWbEM2aRElRIu7JbT_QSpJxzLbLIq8G4WBvXEN0" {
		t.Fatalf("SessionID = %q, %v", id, ok)
	}
	for _, bad := range []string{"", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh!", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9"} {
		if _, ok := SessionID(bad); ok {
			t.Errorf("SessionID accepted %q", bad)
		}
	}
}

// TestFieldsAreCopies: the values Fields returns share one buffer, yet
// writing into one or appending to it changes neither the others nor the
// stored session.
func TestFieldsAreCopies(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := context.Background()
	token, err := n.Create(ctx, WithFields(map[string][]byte{"a": []byte("aaa"), "b": []byte("bbb"), "c": []byte("ccc")}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.Get(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	f := s.Fields()
	f["a"] = append(f["a"], "xyz"...)
	f["b"][0] = 'X'
	if string(f["a"]) != "aaaxyz" || string(f["b"]) != "Xbb" || string(f["c"]) != "ccc" {
		t.Fatalf("values leak into each other: %q", f)
	}
	again, err := n.Get(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if g := again.Fields(); string(g["a"]) != "aaa" || string(g["b"]) != "bbb" {
		t.Fatalf("the stored session changed: %q", g)
	}
}
