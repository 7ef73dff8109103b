package p2pnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.SyncInterval = 200 * time.Millisecond
	cfg.SyncTimeout = 2 * time.Second
	return cfg
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertSameWinner writes one field on every node at once and checks that
// they all end with the same winner.
func assertSameWinner(t *testing.T, nodes []*Node, token string, converged func() bool) {
	t.Helper()
	ctx := context.Background()
	for i, n := range nodes {
		if err := n.Set(ctx, token, "color", []byte(fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "convergence", converged)
	var winner string
	for _, n := range nodes {
		s, _ := n.Get(ctx, token)
		v, _ := s.Get("color")
		if winner == "" {
			winner = string(v)
		} else if string(v) != winner {
			t.Fatalf("nodes disagree on the winner: %q vs %q", v, winner)
		}
	}
}

// assertAfterHeal checks that every write survived a partition and the
// destroyed session stayed destroyed.
func assertAfterHeal(t *testing.T, nodes []*Node, written map[string]string, key, destroyed string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		for tk, want := range written {
			s, err := n.Get(ctx, tk)
			if v, _ := s.Get(key); err != nil || string(v) != want {
				t.Fatalf("write lost on %s: %v", n.ID(), err)
			}
		}
		if _, err := n.Get(ctx, destroyed); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("destroyed session came back on %s: %v", n.ID(), err)
		}
	}
}
