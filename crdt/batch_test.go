package crdt

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestBatchJoinsByID: a batch holds, per id, the join of the deltas added
// for it, whether it holds one session or several, after Join and Reset.
func TestBatchJoinsByID(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ids := []string{"a", "b", "c"}
		type add struct {
			id string
			d  *Session
		}
		adds := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) add {
			d := genDelta().Draw(t, "d")
			d.ID = rapid.SampledFrom(ids).Draw(t, "id")
			return add{d.ID, d}
		}), 0, 12).Draw(t, "adds")
		split := rapid.IntRange(0, len(adds)).Draw(t, "split")
		var b, o Batch
		want := map[string]*Session{}
		for i, a := range adds {
			if i < split {
				b.Add(a.d)
			} else {
				o.Add(a.d)
			}
			if w, ok := want[a.id]; ok {
				mustMerge(t, w, a.d)
			} else {
				want[a.id] = a.d.Clone()
			}
		}
		b.Join(&o)
		if b.Len() != len(want) {
			t.Fatalf("Len %d, want %d", b.Len(), len(want))
		}
		got := b.Sessions()
		if !slices.IsSortedFunc(got, func(x, y *Session) int { return strings.Compare(x.ID, y.ID) }) {
			t.Fatal("Sessions not sorted by id")
		}
		for _, s := range got {
			if w := want[s.ID]; w == nil || !w.Equal(s) || !b.Get(s.ID).Equal(w) {
				t.Fatalf("session %s: %s, want %s", s.ID, describe(s), describe(want[s.ID]))
			}
		}
		if b.Get("absent") != nil {
			t.Fatal("Get of an absent id")
		}
		b.Reset()
		if b.Len() != 0 || len(b.Sessions()) != 0 {
			t.Fatal("Reset left sessions")
		}
	})
}
