package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// quietConfig is DefaultConfig with its logs discarded.
func quietConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

func testConfig() Config {
	cfg := quietConfig()
	cfg.SyncInterval = 200 * time.Millisecond
	cfg.SyncTimeout = 2 * time.Second
	return cfg
}

type cluster struct {
	net   *memNet
	nodes []*Node
}

func newCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{net: newMemNet()}
	for i := range n {
		cfg := testConfig()
		if tweak != nil {
			tweak(&cfg)
		}
		cfg.Dial = c.net.dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		nd, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nd.Close(context.Background()) })
		c.nodes = append(c.nodes, nd)
	}
	c.net.connectAll()
	return c
}

func (c *cluster) ids(idx ...int) []PeerID {
	var out []PeerID
	for _, i := range idx {
		out = append(out, c.nodes[i].ID())
	}
	return out
}

// converged reports whether every node holds the same sessions.
func (c *cluster) converged() bool {
	root := c.nodes[0].Store().Digests().Root
	for _, n := range c.nodes[1:] {
		if n.Store().Digests().Root != root {
			return false
		}
	}
	return true
}

func TestSessionLifecycle(t *testing.T) {
	clock := &offsetClock{}
	c := newCluster(t, 1, func(cfg *Config) {
		cfg.Clock = clock
		cfg.IdleTimeout = time.Minute
		cfg.AbsoluteLifetime = time.Hour
	})
	n := c.nodes[0]
	ctx := context.Background()
	token, err := n.Create(ctx, WithFields(map[string][]byte{"user": []byte("alice")}))
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 {
		t.Fatalf("token %q is not 256 bits of base64url", token)
	}
	s, err := n.Get(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("user"); string(v) != "alice" {
		t.Fatalf("user = %q", v)
	}
	// The store knows the session by the hash of its token only.
	id, _ := SessionID(token)
	if s.ID() != id || id == token {
		t.Fatal("session id must be the token's hash")
	}
	if _, err := n.Store().Get(token); !errors.Is(err, persist.ErrNotFound) {
		t.Fatal("the raw token must not be a key in the store")
	}
	if err := n.Update(ctx, token, map[string][]byte{"cart": []byte("2")}, "user"); err != nil {
		t.Fatal(err)
	}
	s, _ = n.Get(ctx, token)
	if _, ok := s.Get("user"); ok || len(s.Keys()) != 1 {
		t.Fatalf("keys after update = %v", s.Keys())
	}
	// Snapshots are immutable: changing a returned value changes nothing.
	v, _ := s.Get("cart")
	v[0] = 'X'
	if again, _ := s.Get("cart"); string(again) != "2" {
		t.Fatal("snapshot modified through a returned value")
	}

	// Idle expiry, and touches that keep the session alive.
	clock.Advance(50 * time.Second)
	if err := n.Touch(ctx, token); err != nil {
		t.Fatal(err)
	}
	clock.Advance(50 * time.Second)
	if _, err := n.Get(ctx, token); err != nil {
		t.Fatalf("touched session expired: %v", err)
	}
	clock.Advance(61 * time.Second)
	if _, err := n.Get(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle session still visible: %v", err)
	}
	if err := n.Set(ctx, token, "k", []byte("v")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("write to an expired session: %v", err)
	}

	// Renew: new token, same fields, old token gone.
	t2, err := n.Create(ctx, WithFields(map[string][]byte{"role": []byte("guest")}))
	if err != nil {
		t.Fatal(err)
	}
	t3, err := n.Renew(ctx, t2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, t2); !errors.Is(err, ErrNotFound) {
		t.Fatal("old token still works after renew")
	}
	s3, err := n.Get(ctx, t3)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s3.Get("role"); string(v) != "guest" {
		t.Fatalf("renewed session lost its fields: %v", s3.Keys())
	}
	if err := n.Destroy(ctx, t3); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, t3); !errors.Is(err, ErrNotFound) {
		t.Fatal("destroyed session visible")
	}
	for _, bad := range []string{"", "short", token + "x", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"} {
		if _, err := n.Get(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("malformed token %q: %v", bad, err)
		}
	}
}

func TestWriteLimits(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.MaxFields = 3 })
	n := c.nodes[0]
	ctx := context.Background()
	token, _ := n.Create(ctx)
	if err := n.Update(ctx, token, map[string][]byte{"a": nil, "b": nil, "c": nil}); err != nil {
		t.Fatal(err)
	}
	if err := n.Set(ctx, token, "d", nil); !errors.Is(err, ErrTooManyFields) {
		t.Fatalf("fourth field: %v", err)
	}
	if err := n.Set(ctx, token, "a", bytes.Repeat([]byte("x"), crdt.DefaultLimits().MaxValueBytes+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized value: %v", err)
	}
	if err := n.Set(ctx, token, "", []byte("v")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestReplicationAndWatch(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed := c.nodes[2].Watch(ctx)
	token, err := c.nodes[0].Create(ctx, WithFields(map[string][]byte{"user": []byte("bob")}))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes[1:] {
		eventually(t, 5*time.Second, "replication", func() bool {
			s, err := n.Get(ctx, token)
			v, _ := s.Get("user")
			return err == nil && string(v) == "bob"
		})
	}
	select {
	case ch := <-feed:
		id, _ := SessionID(token)
		if ch.ID != id || !ch.Remote || !ch.Created || ch.From != c.nodes[0].ID() {
			t.Fatalf("feed entry %+v", ch)
		}
		// The feed shows the keys a caller reads, not the node's own
		// version entries (every write carries one).
		if !slices.Equal(ch.Fields, []string{"user"}) {
			t.Fatalf("feed entry's fields %q, want [user]", ch.Fields)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no remote change on the feed")
	}
	assertSameWinner(t, c.nodes, token, c.converged)
}

// assertSameWinner writes one field concurrently on every node and checks
// that, once converged, every node holds the same winner.
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

// TestPartitionHeals cuts the cluster in two, writes on both sides
// (including a destroy on one side and writes to that session on the
// other), heals, and checks convergence with nothing lost and the destroyed
// session still destroyed. The in-memory network drops everything across
// the cut, so only anti-entropy can repair it.
func TestPartitionHeals(t *testing.T) {
	c := newCluster(t, 4, nil)
	ctx := context.Background()
	shared, _ := c.nodes[0].Create(ctx, WithFields(map[string][]byte{"a": []byte("0")}))
	eventually(t, 5*time.Second, "initial replication", c.converged)

	c.net.partition(c.ids(0, 1), c.ids(2, 3))
	left := map[string]string{}
	right := map[string]string{}
	for i := range 50 {
		tk, _ := c.nodes[i%2].Create(ctx, WithFields(map[string][]byte{"side": []byte("left")}))
		left[tk] = "left"
		tk, _ = c.nodes[2+i%2].Create(ctx, WithFields(map[string][]byte{"side": []byte("right")}))
		right[tk] = "right"
	}
	if err := c.nodes[0].Destroy(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[3].Set(ctx, shared, "b", []byte("written after the destroy, elsewhere")); err != nil {
		t.Fatalf("the other side must keep serving: %v", err)
	}
	if c.converged() {
		t.Fatal("sides converged across a partition")
	}
	c.net.heal()
	eventually(t, 10*time.Second, "convergence after heal", c.converged)
	assertAfterHeal(t, c.nodes, left, "side", shared)
	assertAfterHeal(t, c.nodes, right, "side", shared)
}

// assertAfterHeal checks, on every node, that each token of written holds
// its value under key (no write lost) and that destroyed stays destroyed.
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
		if _, err := n.Get(ctx, destroyed); !errors.Is(err, ErrNotFound) {
			t.Fatalf("destroyed session came back on %s: %v", n.ID(), err)
		}
	}
}

func TestLazyTouch(t *testing.T) {
	clock := &offsetClock{}
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.Clock = clock
		cfg.IdleTimeout = 100 * time.Second
		cfg.TouchFraction = 0.1
	})
	ctx := context.Background()
	token, _ := c.nodes[0].Create(ctx)
	eventually(t, 5*time.Second, "replication", c.converged)
	before := c.nodes[0].Store().Digests().Root
	clock.Advance(5 * time.Second) // 5% of idle: stays local
	if err := c.nodes[0].Touch(ctx, token); err != nil {
		t.Fatal(err)
	}
	if c.nodes[0].Store().Digests().Root != before {
		t.Fatal("a small touch was stored and would be replicated")
	}
	s, _ := c.nodes[0].Get(ctx, token)
	if got := s.LastAccess(); got.Before(clock.Now().Add(-time.Second)) {
		t.Fatalf("local touch not reflected: last access %v", got)
	}
	clock.Advance(10 * time.Second) // 15% since the replicated access
	if err := c.nodes[0].Touch(ctx, token); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "touch replication", func() bool {
		s, err := c.nodes[1].Get(ctx, token)
		return err == nil && s.LastAccess().After(clock.Now().Add(-2*time.Second))
	})
}

func TestConfigValidate(t *testing.T) {
	withNet := func() Config {
		cfg := DefaultConfig()
		cfg.Dial = newMemNet().dialer("p")
		return cfg
	}
	if err := withNet().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if err := DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "p2pnode") {
		t.Fatalf("a config without a network: %v", err)
	}
	for name, tweak := range map[string]func(*Config){
		"touch fraction": func(c *Config) { c.TouchFraction = 1 },
		"max fields":     func(c *Config) { c.MaxFields = c.Limits.MaxFields + 1 },
		"flush bytes":    func(c *Config) { c.FlushBytes = c.Limits.MaxBatchBytes },
		"no clock":       func(c *Config) { c.Clock = nil },
		"idle":           func(c *Config) { c.IdleTimeout = 0 },
	} {
		cfg := withNet()
		tweak(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}

func TestCreateWithToken(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.AbsoluteLifetime = time.Hour })
	n := c.nodes[0]
	ctx := context.Background()
	chosen, err := newToken(n.cfg.Rand)
	if err != nil {
		t.Fatal(err)
	}
	got, err := n.Create(ctx, WithToken(chosen), WithFields(map[string][]byte{"k": []byte("v")}))
	if err != nil || got != chosen {
		t.Fatalf("create with token: %q, %v", got, err)
	}
	if _, err := n.Create(ctx, WithToken(chosen)); !errors.Is(err, ErrExists) {
		t.Fatalf("second create under the same token: %v", err)
	}
	if _, err := n.Create(ctx, WithToken("not-a-token")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed token: %v", err)
	}
	if err := n.Destroy(ctx, chosen); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Create(ctx, WithToken(chosen)); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("create over a destroyed id: %v", err)
	}
}

// TestStoreOptions: Open hands StoreOptions persist's defaults for the
// store it is about to open, what the hook tunes reaches Badger (the
// memtable's log file is as large as the memtable asked for), and what the
// node owns (the store's directory) is not the hook's to change.
func TestStoreOptions(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dial = newMemNet().dialer("p")
	cfg.DataDir = dir
	cfg.Durability = persist.DurabilityNone
	var seen persist.Options
	cfg.StoreOptions = func(o *persist.Options) {
		seen = *o
		o.MemTableSize = 24 << 20
		o.Dir = filepath.Join(dir, "elsewhere")
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if def := persist.DefaultOptions(filepath.Join(dir, StoreDir)); seen.Dir != def.Dir || seen.MemTableSize != def.MemTableSize || seen.Compression != def.Compression {
		t.Errorf("hook saw dir %q memtable %d compression %v, want persist's defaults for %q", seen.Dir, seen.MemTableSize, seen.Compression, def.Dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere")); !os.IsNotExist(err) {
		t.Errorf("the hook moved the store: %v", err)
	}
	mems, _ := filepath.Glob(filepath.Join(dir, StoreDir, "*.mem"))
	if len(mems) == 0 {
		t.Fatalf("no memtable log in %s", filepath.Join(dir, StoreDir))
	}
	for _, m := range mems {
		if fi, err := os.Stat(m); err != nil || fi.Size() < 24<<20 {
			t.Errorf("memtable log %s: %v bytes (err %v), want at least the 24 MiB asked for", m, fi.Size(), err)
		}
	}
}
