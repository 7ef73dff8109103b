package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

// TestMergeInArena merges deltas as a store's committer does: into a copy
// of the last published state, building overlays in an arena, then
// publishing the result with its overlay copied out (WithOverlayIn) and
// resetting the arena for the next group. Replicas end equal to the
// reference whatever the order and the grouping; every version made in the
// arena reads as it did until the reset (a merge can be undone by going
// back to it); every published version reads as it did to the end,
// however the arena is reused.
func TestMergeInArena(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		deltas := rapid.SliceOfN(genWideDelta(), 1, 25).Draw(t, "deltas")
		want := encode(t, reference(deltas))
		var arena Arena
		for r := range 2 {
			order := rapid.Permutation(deltas).Draw(t, "order")
			order = append(order, rapid.SliceOfN(rapid.SampledFrom(deltas), 0, 5).Draw(t, "dups")...)
			published := &Session{ID: genID}
			type frozen struct {
				s    *Session
				desc string
			}
			var kept, inGroup []frozen
			cur := published.Clone()
			for i, d := range order {
				if _, err := cur.MergeIn(d, &arena); err != nil {
					t.Fatal(err)
				}
				v := cur.Clone()
				inGroup = append(inGroup, frozen{v, describe(v)})
				if i == len(order)-1 || rapid.IntRange(0, 2).Draw(t, "publish") == 0 {
					for _, f := range inGroup {
						if describe(f.s) != f.desc {
							t.Fatalf("a version in the arena changed before the reset")
						}
					}
					inGroup = inGroup[:0]
					published = cur.Clone()
					published.Fields = published.Fields.WithOverlayIn(make([]Register, published.Fields.OverlayLen()))
					kept = append(kept, frozen{published, describe(published)})
					arena.Reset()
					cur = published.Clone()
				}
			}
			for _, f := range kept {
				if describe(f.s) != f.desc {
					t.Fatalf("a published version changed after the arena was reused")
				}
			}
			if got := encode(t, published); string(got) != string(want) {
				t.Fatalf("replica %d diverged from reference\n got %s\nwant %s", r, describe(published), describe(reference(deltas)))
			}
		}
	})
}

// WithOverlayIn refuses a buffer too short for the overlay.
func TestWithOverlayInShortBuffer(t *testing.T) {
	fs := Fields{}.With("a", Field{Value: "1"}).With("b", Field{Value: "2"})
	if fs.OverlayLen() != 2 {
		t.Fatalf("overlay of %d registers, want 2", fs.OverlayLen())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("WithOverlayIn into a short buffer did not panic")
		}
	}()
	fs.WithOverlayIn(make([]Register, 1))
}

// An arena builds overlays of up to Max registers and reports holding
// them; a larger overlay, one built before the arena moved to a new
// buffer (never written again), and one built without it are not its to
// reuse.
func TestArenaHolds(t *testing.T) {
	a := Arena{Max: 3}
	ts := NewTimestamp(genBase.UnixMilli(), 0, 1)
	d := func(keys ...string) *Session {
		s := &Session{ID: genID, Created: ts, Absolute: genBase.UnixMilli() + 1000, Idle: 100}
		for _, k := range keys {
			s.Fields = s.Fields.With(k, Field{Value: k, TS: ts})
		}
		s.Fields = s.Fields.compact()
		return s
	}
	base := d("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	s := base.Clone()
	if _, err := s.MergeIn(d("a0", "b0"), &a); err != nil {
		t.Fatal(err)
	}
	if s.Fields.OverlayLen() != 2 || !a.Holds(s.Fields) {
		t.Fatalf("an overlay of %d registers, held %v: want 2, held", s.Fields.OverlayLen(), a.Holds(s.Fields))
	}
	small := s.Fields
	if _, err := s.MergeIn(d("c0", "d0"), &a); err != nil {
		t.Fatal(err)
	}
	if s.Fields.OverlayLen() != 4 || a.Holds(s.Fields) {
		t.Fatalf("an overlay of %d registers over Max, held %v: want 4, not held", s.Fields.OverlayLen(), a.Holds(s.Fields))
	}
	if !a.Holds(small) {
		t.Fatal("the earlier overlay is no longer held")
	}
	// Fill the buffer: the arena moves to a new one, and the overlays of
	// the old one are no longer its.
	for range 64 {
		x := base.Clone()
		if _, err := x.MergeIn(d("z"), &a); err != nil {
			t.Fatal(err)
		}
	}
	if a.Holds(small) {
		t.Fatal("an overlay of a buffer the arena left is still held")
	}
	var heap Arena
	if heap.Holds(small) || (*Arena)(nil).Holds(small) {
		t.Fatal("an overlay is held by an arena that never built it")
	}
}
