package persist

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A write of a cached session allocates its node once, with the overlay
// its merge built inside, and a delta the store holds already (gossip's
// duplicates, anti-entropy's overlap) allocates nothing: the committer
// merges into a copy in its scratch and makes a node only for what it
// writes. Each write reads back as merged from the cached node, while the
// states published before it stay as they were (readers hold them without
// a lock), though the scratch they were merged in has served the later
// writes.
func TestWriteNodeHoldsItsOverlay(t *testing.T) {
	o := testOptions("")
	o.Serial = true
	s := openStore(t, o)
	clock := crdt.NewClock(2, o.MaxDrift)
	const id = "write-node-session"
	apply(t, s, t0, newSession(id, 1, t0, 6))
	type read struct {
		s    *crdt.Session
		want map[string]string
	}
	var reads []read
	want := map[string]string{}
	for i := range 12 {
		cur := mustGet(t, s, id)
		k, v := fmt.Sprintf("f%02d", i%6), fmt.Sprintf("write %d", i)
		b := crdt.BatchOf(cur.SetString(k, v, clock.Now(t0.Add(time.Duration(i+1)*time.Millisecond))))
		res, err := s.Apply(b, t0)
		if err != nil || len(res.Changes) != 1 {
			t.Fatalf("write %d: %v, changes %v", i, err, res.Changes)
		}
		want[k] = v
		got := mustGet(t, s, id)
		if n := s.cache.node(id); n == nil || &n.s != got {
			t.Fatalf("write %d: the state read is not the cached node's", i)
		}
		if got == cur {
			t.Fatalf("write %d published no new state", i)
		}
		reads = append(reads, read{got, maps.Clone(want)})
		allocs := testing.AllocsPerRun(20, func() {
			res, err := s.Apply(b, t0)
			if err != nil || len(res.Changes) != 0 {
				t.Fatalf("write %d again: %v, changes %v", i, err, res.Changes)
			}
		})
		if allocs != 0 {
			t.Fatalf("write %d: its duplicate allocated %v times, want 0", i, allocs)
		}
	}
	for i, r := range reads {
		for k, v := range r.want {
			if got, _ := r.s.Get(k); got != v {
				t.Fatalf("the state of write %d: %s = %q, want %q", i, k, got, v)
			}
		}
	}
}

// A group too large for the committer's arena (a repair's chunk) merges
// its overlays on the heap and its nodes share them; the states it
// published read as written while later small groups reuse the arena.
func TestLargeGroupOverlays(t *testing.T) {
	o := testOptions("")
	o.Serial = true
	s := openStore(t, o)
	clock := crdt.NewClock(2, o.MaxDrift)
	const sessions = 3 * arenaItems
	var ids []string
	for i := range sessions {
		id := fmt.Sprintf("large-group-%03d", i)
		ids = append(ids, id)
		apply(t, s, t0, newSession(id, 1, t0, 4))
	}
	for round := range 6 {
		at := t0.Add(time.Duration(round+1) * time.Millisecond)
		large := crdt.NewBatch()
		for i, id := range ids {
			large.Add(mustGet(t, s, id).SetString(fmt.Sprintf("f%02d", (i+round)%4), fmt.Sprintf("large %d", round), clock.Now(at)))
		}
		if res := apply(t, s, t0, large.Sessions()...); len(res.Changes) != sessions {
			t.Fatalf("round %d: %d changes, want %d", round, len(res.Changes), sessions)
		}
		published := make([]*crdt.Session, len(ids))
		for i, id := range ids {
			published[i] = mustGet(t, s, id)
		}
		// Small groups after it, each through the arena.
		for i, id := range ids[:arenaItems] {
			apply(t, s, t0, mustGet(t, s, id).SetString("small", fmt.Sprintf("small %d %d", round, i), clock.Now(at)))
		}
		for i, st := range published {
			if v, _ := st.Get(fmt.Sprintf("f%02d", (i+round)%4)); v != fmt.Sprintf("large %d", round) {
				t.Fatalf("round %d: %s reads %q after later writes", round, ids[i], v)
			}
		}
	}
}
