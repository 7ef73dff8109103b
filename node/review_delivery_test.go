package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// storedValue returns field k of session id as n's store holds it.
func storedValue(n *Node, id, k string) (string, bool) {
	s, err := n.Store().Get(id)
	if err != nil || s == nil {
		return "", false
	}
	return s.Get(k)
}

// A lone local write on an idle peer is delivered at its flush, not when
// some other event (an anti-entropy round, a GC tick) happens to wake the
// timer loop: the write's step must wake it (2284441 removed the wake per
// write). Anti-entropy and handoff are an hour away here, so only the flush
// can carry the writes; under both full and partial replication.
func TestReviewLoneWriteFlushesOnTime(t *testing.T) {
	far := func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.HandoffInterval = time.Hour
	}
	ctx := context.Background()
	t.Run("full", func(t *testing.T) {
		c := newCluster(t, 2, far)
		time.Sleep(100 * time.Millisecond) // the first rounds end; the timer sleeps long
		for i := range 5 {
			tok, err := c.nodes[0].Create(ctx, WithFields(map[string][]byte{"v": []byte("0")}))
			if err != nil {
				t.Fatal(err)
			}
			id := mustID(t, tok)
			eventually(t, 2*time.Second, fmt.Sprintf("create %d delivered", i), func() bool {
				_, ok := storedValue(c.nodes[1], id, "v")
				return ok
			})
			time.Sleep(50 * time.Millisecond) // idle again
			if err := c.nodes[0].Set(ctx, tok, "v", []byte("1")); err != nil {
				t.Fatal(err)
			}
			eventually(t, 2*time.Second, fmt.Sprintf("update %d delivered", i), func() bool {
				v, _ := storedValue(c.nodes[1], id, "v")
				return v == "1"
			})
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("partial", func(t *testing.T) {
		c := newPartCluster(t, []string{"eu"}, 3, 2, far)
		c.waitSettled(5*time.Second, nil, map[string]int{"eu": 2, "eu/members": 3})
		time.Sleep(100 * time.Millisecond)
		w := c.nodes[0]
		for i := range 5 {
			// A session the writer holds: its other holder gets it by the
			// direct delta only (no handoff, no rounds within the test).
			var tok, id string
			for {
				tok, _ = newToken(w.cfg.Rand)
				id = mustID(t, tok)
				if w.core.HoldsID(id) {
					break
				}
			}
			if _, err := w.Create(ctx, WithToken(tok), WithFields(map[string][]byte{"v": []byte("0")})); err != nil {
				t.Fatal(err)
			}
			eventually(t, 2*time.Second, fmt.Sprintf("create %d delivered to its other holder", i), func() bool {
				return c.copies(id)["eu"] == 2
			})
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// Under partial replication, a peer connected to the writer that has not
// said hello (its hello lost or late, an older build) takes the writer's
// deltas by gossip, and keeps what its own view says it holds: without
// rounds or handoffs within the test, gossip is its only way to them.
func TestReviewUnannouncedPeerGetsDeltas(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 2, 1, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.HandoffInterval = time.Hour
	})
	late := c.add("eu")
	w := c.nodes[0]
	// late knows peer 1 both ways, and the writer knows late; late has not
	// learnt of the writer, so it has said no hello to it.
	c.net.endpoint(c.nodes[1].ID()).in.PeerUp(late.ID())
	c.net.endpoint(late.ID()).in.PeerUp(c.nodes[1].ID())
	c.net.endpoint(w.ID()).in.PeerUp(late.ID())
	// The writer greets late, which counts the writer, not connected to it,
	// as a member gone for HolderGrace from that hello: deltas arriving
	// in that window are filtered by a placement of three. Let it pass.
	time.Sleep(3 * partConfig("eu", 1).HolderGrace)
	eventually(t, 5*time.Second, "late places itself beside peer 1", func() bool {
		return len(late.Placement().RegionMembers) == 2
	})
	ctx := context.Background()
	var mine []string
	for len(mine) < 5 {
		tok, err := w.Create(ctx, WithFields(map[string][]byte{"v": []byte("x")}))
		if err != nil {
			t.Fatal(err)
		}
		if id := mustID(t, tok); late.core.HoldsID(id) {
			mine = append(mine, id)
		}
	}
	for _, id := range mine {
		eventually(t, 3*time.Second, "the unannounced peer stores a session it holds", func() bool {
			_, ok := storedValue(late, id, "v")
			return ok
		})
	}
}

// Every direct delta lost: anti-entropy between holders and the writer's
// handoff still bring each session to exactly its holders, with the last
// value written.
func TestReviewLostDirectDeltasRepaired(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, nil)
	want := map[string]int{"eu": 2, "eu/members": 3}
	c.waitSettled(5*time.Second, nil, want)
	c.net.mu.Lock()
	c.net.loseGossip = func(from, to PeerID) bool { return true }
	c.net.mu.Unlock()
	ctx := context.Background()
	var ids, toks []string
	for i := range 40 {
		w := c.nodes[i%3]
		tok, err := w.Create(ctx, WithFields(map[string][]byte{"v": []byte("0")}))
		if err != nil {
			t.Fatal(err)
		}
		ids, toks = append(ids, mustID(t, tok)), append(toks, tok)
	}
	for i, tok := range toks {
		// On the writer: it holds the session until its holders stored it.
		if err := c.nodes[i%3].Set(ctx, tok, "v", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	c.waitSettled(15*time.Second, ids, want)
	// Settled counts copies only: a holder that anti-entropy gave the
	// create before the update is a copy already, and takes the update at
	// a later round (seen under -race). So the values are waited for.
	deadline := time.Now().Add(15 * time.Second)
	for {
		stale := ""
		for _, id := range ids {
			for _, n := range c.live() {
				if v, ok := storedValue(n, id, "v"); ok && v != "1" && stale == "" {
					stale = fmt.Sprintf("%s stores %.8s with v=%q", n.ID(), id, v)
				}
			}
		}
		if stale == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s 15 s after settling, want the last write", stale)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A peer joins while writes stream (placement moves slots to it with
// deltas in flight to the old holders): once settled, every session is on
// exactly R peers of the region, each with the last value written.
func TestReviewJoinDuringWrites(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 1, nil)
	c.waitSettled(5*time.Second, nil, map[string]int{"eu": 1, "eu/members": 3})
	ctx := context.Background()
	var ids, toks []string
	var versions [30]Version
	for i := range 30 {
		tok, err := c.nodes[i%3].Create(WithVersion(ctx, &versions[i]), WithFields(map[string][]byte{"v": []byte("0")}))
		if err != nil {
			t.Fatal(err)
		}
		ids, toks = append(ids, mustID(t, tok)), append(toks, tok)
	}
	for round := 1; round <= 6; round++ {
		if round == 3 {
			c.join(c.add("eu"))
		}
		for i, tok := range toks {
			// Each session's writer in turn, carrying the version of the
			// write before, as a client going from peer to peer does.
			w := c.nodes[(i+round)%3]
			if err := w.Set(WithVersion(ctx, &versions[i]), tok, "v", []byte(fmt.Sprint(round))); err != nil {
				t.Fatalf("round %d, session %d on %s: %v", round, i, w.ID(), err)
			}
		}
	}
	c.waitSettled(15*time.Second, ids, map[string]int{"eu": 1, "eu/members": 4})
	for _, id := range ids {
		for _, n := range c.live() {
			if v, ok := storedValue(n, id, "v"); ok && v != "6" {
				t.Fatalf("%s stores %.8s with v=%q, want the last write", n.ID(), id, v)
			}
		}
	}
}

// tokenInBucket returns a fresh token whose session falls in bucket b.
func tokenInBucket(t *testing.T, n *Node, b int) string {
	t.Helper()
	for {
		tok, err := newToken(n.cfg.Rand)
		if err != nil {
			t.Fatal(err)
		}
		if persist.BucketOf(mustID(t, tok)) == b {
			return tok
		}
	}
}

// A bucket that keeps changing (writes to it never stop) while one old
// session in it differs between two peers: anti-entropy must still repair
// that session. A round that skips buckets with recent changes (to spare
// write bursts) would skip this one for ever.
func TestReviewBusyBucketStillRepaired(t *testing.T) {
	c := newCluster(t, 2, nil) // rounds every 200 ms
	a, b := c.nodes[0], c.nodes[1]
	ctx := context.Background()
	seed, err := a.Create(ctx, WithFields(map[string][]byte{"v": []byte("x")}))
	if err != nil {
		t.Fatal(err)
	}
	bucket := persist.BucketOf(mustID(t, seed))
	// The old session: its delta to b is lost.
	c.net.mu.Lock()
	c.net.loseGossip = func(from, to PeerID) bool { return true }
	c.net.mu.Unlock()
	old, err := a.Create(ctx, WithToken(tokenInBucket(t, a, bucket)), WithFields(map[string][]byte{"v": []byte("old")}))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // flushed (and lost)
	c.net.mu.Lock()
	c.net.loseGossip = nil
	c.net.mu.Unlock()
	oldID := mustID(t, old)
	// Writes to the same bucket, on both peers, every few milliseconds
	// until b has the old session (or the test gives up).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		busy := []string{tokenInBucket(t, a, bucket), tokenInBucket(t, a, bucket)}
		for i, tok := range busy {
			if _, err := c.nodes[i].Create(ctx, WithToken(tok)); err != nil {
				t.Error(err)
				return
			}
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := c.nodes[i%2].Set(ctx, busy[i%2], "n", []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	eventually(t, 10*time.Second, "the old session repaired in a bucket that keeps changing", func() bool {
		_, ok := storedValue(b, oldID, "v")
		return ok
	})
}

// A holder that lost a writer's direct delta, then gets the writer's next
// (guarded: it asks for the one before) directly: it parks it and fetches
// the session from the writer (a gap fetch), so it ends with both writes
// with no anti-entropy round or handoff to help.
func TestReviewLostDirectDeltaGapFetched(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.HandoffInterval = time.Hour
	})
	c.waitSettled(5*time.Second, nil, map[string]int{"eu": 2, "eu/members": 3})
	w := c.nodes[0]
	ctx := context.Background()
	var tok, id string
	for {
		tok, _ = newToken(w.cfg.Rand)
		id = mustID(t, tok)
		if w.core.HoldsID(id) {
			break
		}
	}
	var other *Node
	for _, h := range w.core.Holders(id) {
		if h != w.ID() {
			other = c.net.endpoint(h).in.(inbound).n
		}
	}
	if _, err := w.Create(ctx, WithToken(tok), WithFields(map[string][]byte{"a": []byte("1")})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the create delivered", func() bool {
		_, ok := storedValue(other, id, "a")
		return ok
	})
	for i := range 3 {
		c.net.mu.Lock()
		c.net.loseGossip = func(from, to PeerID) bool { return from == w.ID() && to == other.ID() }
		c.net.mu.Unlock()
		lost := fmt.Sprint("lost", i)
		if err := w.Set(ctx, tok, lost, []byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // flushed, and lost
		c.net.mu.Lock()
		c.net.loseGossip = nil
		c.net.mu.Unlock()
		next := fmt.Sprint("next", i)
		if err := w.Set(ctx, tok, next, []byte("y")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "the holder has the lost write and the next", func() bool {
			_, ok1 := storedValue(other, id, lost)
			_, ok2 := storedValue(other, id, next)
			return ok1 && ok2
		})
	}
	if s, _ := other.Store().Get(id); s == nil || !s.Covered() {
		t.Errorf("the holder's copy does not stand for its version entries: %+v", s)
	}
}

// When a holder leaves for good, the peers that gain its slots pull them
// from the other holders at once; a pull compares every gained bucket,
// even one that keeps changing (writes go on), and a gained slot counts as
// pulled only then: when Placement says no slot is left to pull, every
// older session of those slots is here.
func TestReviewGainedSlotsPulledUnderWrites(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 3, 2, func(cfg *Config) {
		cfg.SyncInterval = 10 * time.Second // only the pull, within the test
	})
	c.waitSettled(5*time.Second, nil, map[string]int{"eu": 2, "eu/members": 3})
	w := c.nodes[0]
	ctx := context.Background()
	const buckets = 12
	var ids []string
	var busy [buckets][]string
	for b := range buckets {
		for range 4 {
			tok, err := w.Create(ctx, WithToken(tokenInBucket(t, w, b)), WithFields(map[string][]byte{"v": []byte("old")}))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, mustID(t, tok))
		}
		for range 12 {
			busy[b] = append(busy[b], tokenInBucket(t, w, b))
		}
	}
	c.waitSettled(5*time.Second, ids, map[string]int{"eu": 2, "eu/members": 3})
	// New sessions in the same buckets, without pause, from here on.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			b := i % buckets
			if i/buckets >= len(busy[b]) {
				continue
			}
			// Load only: a create that finds a holder slow to answer
			// (ErrUnavailable under the race detector) is no failure.
			_, _ = w.Create(ctx, WithToken(busy[b][i/buckets]))
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(100 * time.Millisecond)
	c.stop(2)
	eventually(t, 10*time.Second, "the leaver's slots placed and pulled", func() bool {
		for _, n := range c.live() {
			p := n.Placement()
			if len(p.RegionMembers) != 2 || p.SlotsGained != 0 {
				return false
			}
		}
		return true
	})
	for _, n := range c.live() {
		missing := 0
		for _, id := range ids {
			if _, ok := storedValue(n, id, "v"); !ok {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s says it pulled every gained slot but lacks %d of the %d older sessions", n.ID(), missing, len(ids))
		}
	}
}

// A peer left alone holding slots no other peer holds (its region's other
// holder left for good, R = 1) has nobody to pull them from: its store is
// all there is, and it must go on serving them, new sessions included,
// rather than wait for ever for a pull (ErrUnavailable on every read and
// token create in half the keyspace).
func TestReviewSoleHolderServesGainedSlots(t *testing.T) {
	c := newPartCluster(t, []string{"eu"}, 2, 1, nil)
	c.waitSettled(5*time.Second, nil, map[string]int{"eu": 1, "eu/members": 2})
	a := c.nodes[0]
	ctx := context.Background()
	c.stop(1)
	eventually(t, 5*time.Second, "the leaver out of placement", func() bool {
		return len(a.Placement().RegionMembers) == 1
	})
	for i := range 20 {
		tok, err := newToken(a.cfg.Rand)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Create(ctx, WithToken(tok), WithFields(map[string][]byte{"v": []byte("x")})); err != nil {
			t.Fatalf("create %d with a token on the sole holder: %v", i, err)
		}
		if _, err := a.Get(ctx, tok); err != nil {
			t.Fatalf("read %d on the sole holder: %v", i, err)
		}
		gone, _ := newToken(a.cfg.Rand)
		if _, err := a.Get(ctx, gone); !errors.Is(err, ErrNotFound) {
			t.Fatalf("read of a session nobody wrote: %v, want ErrNotFound", err)
		}
	}
	if g := a.Placement().SlotsGained; g != 0 {
		t.Errorf("%d slots gained with nobody to pull them from", g)
	}
}
