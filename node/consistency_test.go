package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A counter incremented by requests alternating between two peers, back
// to back, each carrying the version the previous one returned: no
// increment is lost. Without versions the same loop loses some (the second
// peer reads before the first's write has replicated), which the control
// run below checks, so that the test shows what versions fix.
func TestVersionAlternatingCounter(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.FlushDelay = 5 * time.Millisecond })
	ctx := context.Background()
	count := func(withVersion bool) int {
		var v Version
		vctx := ctx
		if withVersion {
			vctx = WithVersion(ctx, &v)
		}
		tok, err := c.nodes[0].Create(vctx, WithFields(map[string][]byte{"n": []byte("0")}))
		if err != nil {
			t.Fatal(err)
		}
		if !withVersion {
			eventually(t, 5*time.Second, "the create to replicate", c.converged)
		}
		for i := range 200 {
			nd := c.nodes[(i+1)%2]
			s, err := nd.Get(vctx, tok)
			if err != nil {
				t.Fatalf("increment %d: read: %v", i, err)
			}
			x, _ := s.GetString("n")
			k, _ := strconv.Atoi(x)
			if err := nd.Set(vctx, tok, "n", []byte(strconv.Itoa(k+1))); err != nil {
				t.Fatalf("increment %d: %v", i, err)
			}
		}
		eventually(t, 5*time.Second, "convergence", c.converged)
		s, err := c.nodes[0].Get(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := s.GetString("n")
		k, _ := strconv.Atoi(x)
		return k
	}
	if got := count(true); got != 200 {
		t.Fatalf("with versions: counter at %d after 200 increments", got)
	}
	if got := count(false); got == 200 {
		t.Logf("control run without versions lost nothing this time (the race is timing-dependent)")
	} else {
		t.Logf("control run without versions: %d of 200 increments kept", got)
	}
}

// A peer that cannot reach the version it is shown answers ErrStale after
// ConsistencyWait rather than older data; a read without a version gets
// the old data as before; after the partition heals, the version is
// served.
func TestVersionStaleThenHealed(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.ConsistencyWait = 100 * time.Millisecond })
	ctx := context.Background()
	tok, err := c.nodes[0].Create(ctx, WithFields(map[string][]byte{"k": []byte("old")}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "replication", c.converged)
	c.net.partition(c.ids(0), c.ids(1))
	var v Version
	if err := c.nodes[0].Set(WithVersion(ctx, &v), tok, "k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 {
		t.Fatalf("version after one peer's writes: %v, want one entry", v)
	}
	seen := v
	start := time.Now()
	_, err = c.nodes[1].Get(WithVersion(ctx, &v), tok)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("read of an unreachable version: %v, want ErrStale", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before ConsistencyWait", waited)
	}
	if !v.Equal(seen) {
		t.Fatalf("a failed call changed the version to %v", v)
	}
	if s, err := c.nodes[1].Get(ctx, tok); err != nil {
		t.Fatal(err)
	} else if x, _ := s.GetString("k"); x != "old" {
		t.Fatalf("read without a version: %q, want the old value as before", x)
	}
	// Writes with a stale version are refused too: they would be based
	// on data older than the client saw.
	if err := c.nodes[1].Set(WithVersion(ctx, &v), tok, "k", []byte("lost")); !errors.Is(err, ErrStale) {
		t.Fatalf("write with an unreachable version: %v, want ErrStale", err)
	}
	c.net.heal()
	eventually(t, 5*time.Second, "heal", c.converged)
	s, err := c.nodes[1].Get(WithVersion(ctx, &v), tok)
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := s.GetString("k"); x != "new" {
		t.Fatalf("after heal: %q", x)
	}
	if !v.Covers(seen) {
		t.Fatalf("version went back: %v does not cover %v", v, seen)
	}
	if keys := s.Keys(); len(keys) != 1 || keys[0] != "k" {
		t.Fatalf("the node's own keys show: %q", keys)
	}
	if err := c.nodes[1].Set(ctx, tok, internalPrefix+"x", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("write of an internal key: %v, want ErrInvalid", err)
	}
}

// A peer that missed an earlier write of a writer but got a later one does
// not take the later one's version entry (its guard asks for the earlier
// one): the version it covers is not a lie, and a reader showing the first
// write's version reads it there. The first write's broadcast is lost with
// the peers connected and anti-entropy off, so only the second write's
// gossip shows node 1 the gap. (A partition healed without PeerUp left node
// 1 without the peer to fetch from, and the test passed only when both
// writes left in one batch after the heal.)
func TestVersionEntryCarriesEarlierWrites(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	c.awaitRounds(t)
	ctx := context.Background()
	tok, _ := c.nodes[0].Create(ctx)
	eventually(t, 5*time.Second, "replication", c.converged)
	var lost atomic.Int64
	c.net.mu.Lock()
	c.net.loseGossip = func(PeerID, PeerID) bool { lost.Add(1); return true }
	c.net.mu.Unlock()
	var v Version
	vctx := WithVersion(ctx, &v)
	if err := c.nodes[0].Set(vctx, tok, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	first := v
	eventually(t, 5*time.Second, "the first write's broadcast to be lost", func() bool { return lost.Load() > 0 })
	c.net.mu.Lock()
	c.net.loseGossip = nil
	c.net.mu.Unlock()
	if err := c.nodes[0].Set(vctx, tok, "b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the second write to arrive", func() bool {
		s, err := c.nodes[1].Get(ctx, tok)
		_, ok := s.GetString("b")
		return err == nil && ok
	})
	s, err := c.nodes[1].Get(WithVersion(ctx, &first), tok)
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := s.GetString("a"); x != "1" {
		t.Fatalf("peer covers the first write's version without holding it: a=%q", x)
	}
}

// A peer that replication has not reached asks the writer for the session
// and serves the version without waiting for gossip: here the writer holds
// its broadcasts back for seconds and anti-entropy is off.
func TestVersionFetchFromWriter(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.FlushDelay = 5 * time.Second
		cfg.SyncInterval = time.Hour
	})
	ctx := context.Background()
	// Let the anti-entropy rounds of the start end first.
	eventually(t, 5*time.Second, "startup rounds", func() bool {
		for _, nd := range c.nodes {
			nd.mu.Lock()
			busy := len(nd.core.rounds)
			nd.mu.Unlock()
			if busy > 0 {
				return false
			}
		}
		return true
	})
	var v Version
	tok, err := c.nodes[0].Create(WithVersion(ctx, &v), WithFields(map[string][]byte{"k": []byte("v")}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[1].Get(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the create reached node 1 before the test could show the fetch: %v", err)
	}
	start := time.Now()
	s, err := c.nodes[1].Get(WithVersion(ctx, &v), tok)
	if err != nil {
		t.Fatalf("read of a version only its writer holds: %v", err)
	}
	if x, _ := s.GetString("k"); x != "v" {
		t.Fatalf("fetched session: k=%q", x)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("served after %v: not by a fetch", took)
	}
	// The third peer never heard of it: the fetch went to the writer only.
	id, _ := SessionID(tok)
	if _, err := c.nodes[2].Store().Get(id); err == nil {
		t.Fatal("node 2 holds the session: it was broadcast, not fetched")
	}
}

// A Save without a version (the Redis front's writes) sends only what it
// changes and leaves the version alone; with a version it stamps it.
func TestSaveVersioned(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := context.Background()
	var v Version
	tok, err := c.nodes[0].Create(WithVersion(ctx, &v))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].Save(ctx, tok, Save{Set: map[string][]byte{"a": []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	s, _ := c.nodes[0].Get(ctx, tok)
	if !s.Version().Equal(v) {
		t.Fatalf("an unversioned Save moved the version: %v, was %v", s.Version(), v)
	}
	saved := v
	if err := c.nodes[0].Save(WithVersion(ctx, &v), tok, Save{Set: map[string][]byte{"b": []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if !v.Covers(saved) || v.Equal(saved) {
		t.Fatalf("a versioned Save did not advance the version: %v", v)
	}
	if s, _ := c.nodes[0].Get(ctx, tok); !s.Version().Equal(v) {
		t.Fatalf("stored version %v, the caller got %v", s.Version(), v)
	}
}

// batchSizes records the sizes of the batches a node broadcasts.
type batchSizes struct {
	nopMetrics
	mu    sync.Mutex
	sizes []float64
}

func (b *batchSizes) Observe(name string, v float64, _ ...string) {
	if name == "batch_bytes" {
		b.mu.Lock()
		b.sizes = append(b.sizes, v)
		b.mu.Unlock()
	}
}

// A large session's versioned write is broadcast as what changed, without
// its version entry; a versioned reader on another peer fetches the whole
// state and reads its writes all the same.
func TestVersionLargeSession(t *testing.T) {
	rec := &batchSizes{}
	c := newCluster(t, 2, func(cfg *Config) { cfg.Metrics = rec })
	ctx := context.Background()
	big := map[string][]byte{}
	for i := range 8 {
		big[fmt.Sprintf("f%d", i)] = bytes.Repeat([]byte{'x'}, 1024)
	}
	tok, err := c.nodes[0].Create(ctx, WithFields(big))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "replication", c.converged)
	// The create goes whole, as it must; the peers may converge before its
	// broadcast leaves (a connection's first anti-entropy round can bring
	// it), so wait for that broadcast before counting.
	eventually(t, 5*time.Second, "the create's broadcast", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return slices.ContainsFunc(rec.sizes, func(sz float64) bool { return sz > 8*1024 })
	})
	rec.mu.Lock()
	rec.sizes = nil
	rec.mu.Unlock()
	var v Version
	for i := range 20 {
		nd := c.nodes[i%2]
		s, err := nd.Get(WithVersion(ctx, &v), tok)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if i > 0 {
			if got, _ := s.GetString("n"); got != strconv.Itoa(i-1) {
				t.Fatalf("read %d on %s: n=%q, want %d", i, nd.ID(), got, i-1)
			}
		}
		if err := nd.Set(WithVersion(ctx, &v), tok, "n", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.sizes) == 0 {
		t.Fatal("nothing was broadcast")
	}
	for _, sz := range rec.sizes {
		if sz > 2048 {
			t.Fatalf("a batch of %v bytes: a large session's write went whole", sz)
		}
	}
}
