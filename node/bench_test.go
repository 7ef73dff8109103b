package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkNodeGet is the edge read: a token to a visible snapshot of a
// 10-field ~1 KiB session, and one field read from it.
func BenchmarkNodeGet(b *testing.B) {
	net := newMemNet()
	cfg := testConfig()
	cfg.Dial = net.dialer("bench")
	n, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	fields := map[string][]byte{}
	for i := range 10 {
		fields[fmt.Sprintf("field-%d", i)] = make([]byte, 90)
	}
	token, err := n.Create(ctx, WithFields(fields))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := n.Get(ctx, token)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := s.Get("field-3"); !ok {
			b.Fatal("field missing")
		}
	}
}

// BenchmarkNodeGetSpread: Get plus one field read over 10k sessions of 10
// fields of 90 bytes, in a scattered order: the edge read of bench/run,
// whose cost is memory traffic over the decoded sessions, not the code.
func BenchmarkNodeGetSpread(b *testing.B) {
	benchSpread(b, func(s Session) bool { _, ok := s.Get("field3"); return ok })
}

// BenchmarkNodeGetSpreadAll is BenchmarkNodeGetSpread copying out every
// field (Session.Fields), as HGETALL does: bench/run's other read row.
func BenchmarkNodeGetSpreadAll(b *testing.B) {
	benchSpread(b, func(s Session) bool { return len(s.Fields()) == 10 })
}

// BenchmarkNodeGetSpreadAllInto is BenchmarkNodeGetSpreadAll copying
// every field into the reader's own map (Session.FieldsInto), as a worker
// that reads session after session does.
func BenchmarkNodeGetSpreadAllInto(b *testing.B) {
	m := map[string][]byte{}
	benchSpread(b, func(s Session) bool { s.FieldsInto(m); return len(m) == 10 })
}

func benchSpread(b *testing.B, read func(Session) bool) {
	net := newMemNet()
	cfg := testConfig()
	cfg.Dial = net.dialer("bench")
	n, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	const sessions = 10_000
	tokens := make([]string, sessions)
	for i := range tokens {
		fields := map[string][]byte{}
		for f := range 10 {
			fields[fmt.Sprintf("field%d", f)] = bytes.Repeat([]byte{byte('a' + (i+f)%26)}, 90)
		}
		if tokens[i], err = n.Create(ctx, WithFields(fields)); err != nil {
			b.Fatal(err)
		}
	}
	for _, tk := range tokens { // all cached, as on a warm peer
		if _, err := n.Get(ctx, tk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % sessions // a prime stride: no locality
		s, err := n.Get(ctx, tokens[i])
		if err != nil {
			b.Fatal(err)
		}
		if !read(s) {
			b.Fatal("field missing")
		}
	}
}
