package placement_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/sessionmesh/sessionmesh/internal/placement"
	"github.com/sessionmesh/sessionmesh/persist"
)

func TestSlotIsTheStoreBucket(t *testing.T) {
	if placement.Slots != persist.Buckets {
		t.Fatalf("Slots %d, persist.Buckets %d", placement.Slots, persist.Buckets)
	}
	for i := range 10_000 {
		id := fmt.Sprintf("session-%d", i)
		if a, b := placement.SlotOf(id), persist.BucketOf(id); a != b {
			t.Fatalf("SlotOf(%q) = %d, BucketOf = %d", id, a, b)
		}
	}
}

func memberNames(t *rapid.T, label string) []string {
	return rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z0-9]{1,12}`), 1, 20, rapid.ID[string]).Draw(t, label)
}

// Each slot has min(R, members) distinct holders, all members, and every
// peer computes the same ones whatever order it learned the members in.
func TestHoldersCountAndDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := memberNames(t, "members")
		r := rapid.IntRange(1, 5).Draw(t, "r")
		shuffled := slices.Clone(ms)
		perm := rapid.Permutation(shuffled).Draw(t, "perm")
		a, b := placement.NewTable(ms, r), placement.NewTable(perm, r)
		for s := range placement.Slots {
			h := a.Holders(s)
			if len(h) != min(r, len(ms)) {
				t.Fatalf("slot %d: %d holders, want %d", s, len(h), min(r, len(ms)))
			}
			seen := map[string]bool{}
			for _, m := range h {
				if seen[m] || !slices.Contains(ms, m) {
					t.Fatalf("slot %d: holders %v over members %v", s, h, ms)
				}
				seen[m] = true
			}
			if !slices.Equal(h, b.Holders(s)) {
				t.Fatalf("slot %d: holders %v in one order, %v in another", s, h, b.Holders(s))
			}
			// The reference: sort all members by score, take r.
			ref := slices.Clone(ms)
			slices.SortFunc(ref, func(a, b string) int {
				sa, sb := placement.Score(s, a), placement.Score(s, b)
				switch {
				case sa != sb:
					return cmp.Compare(sb, sa)
				default:
					return strings.Compare(a, b)
				}
			})
			ref = ref[:len(h)]
			if !slices.Equal(h, ref) {
				t.Fatalf("slot %d: holders %v, reference %v", s, h, ref)
			}
		}
	})
}

// Adding a member moves only slots the newcomer takes (no slot moves
// between old members), and about R/(N+1) of them.
func TestAddingAMemberMovesItsShare(t *testing.T) {
	for _, tc := range []struct{ n, r int }{{4, 2}, {8, 2}, {12, 3}, {3, 1}, {30, 2}} {
		ms := make([]string, tc.n)
		for i := range ms {
			ms[i] = fmt.Sprintf("12D3KooWpeer%02d", i)
		}
		before := placement.NewTable(ms, tc.r)
		newcomer := "12D3KooWnewcomer"
		after := placement.NewTable(append(slices.Clone(ms), newcomer), tc.r)
		moved := placement.Moved(before, after)
		taken := len(after.Held(newcomer))
		if moved != taken {
			t.Errorf("n=%d r=%d: %d slots changed holders but the newcomer took %d: slots moved between old members", tc.n, tc.r, moved, taken)
		}
		want := float64(placement.Slots) * float64(tc.r) / float64(tc.n+1)
		if float64(taken) < 0.8*want || float64(taken) > 1.2*want {
			t.Errorf("n=%d r=%d: newcomer took %d slots, want about %.0f (R/(N+1) of %d)", tc.n, tc.r, taken, want, placement.Slots)
		}
		// Each old member holds about R/N of the slots before.
		for _, m := range ms {
			held := float64(len(before.Held(m)))
			share := float64(placement.Slots) * float64(tc.r) / float64(tc.n)
			if held < 0.75*share || held > 1.25*share {
				t.Errorf("n=%d r=%d: %s holds %.0f slots, want about %.0f", tc.n, tc.r, m, held, share)
			}
		}
	}
}

// Removing a member moves only the slots it held: each gets one new holder.
func TestRemovingAMemberMovesOnlyItsSlots(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := memberNames(t, "members")
		if len(ms) < 2 {
			t.Skip("needs two members")
		}
		r := rapid.IntRange(1, 4).Draw(t, "r")
		gone := rapid.SampledFrom(ms).Draw(t, "gone")
		rest := slices.DeleteFunc(slices.Clone(ms), func(m string) bool { return m == gone })
		before, after := placement.NewTable(ms, r), placement.NewTable(rest, r)
		for s := range placement.Slots {
			hb, ha := before.Holders(s), after.Holders(s)
			if !slices.Contains(hb, gone) {
				if !slices.Equal(hb, ha) {
					t.Fatalf("slot %d not held by %s moved: %v -> %v", s, gone, hb, ha)
				}
				continue
			}
			for _, m := range hb {
				if m != gone && !slices.Contains(ha, m) {
					t.Fatalf("slot %d: surviving holder %s dropped: %v -> %v", s, m, hb, ha)
				}
			}
		}
	})
}

func TestAllReplicas(t *testing.T) {
	ms := []string{"c", "a", "b"}
	tb := placement.NewTable(ms, 0)
	for s := range placement.Slots {
		if len(tb.Holders(s)) != 3 {
			t.Fatalf("slot %d: %v, want every member", s, tb.Holders(s))
		}
	}
	if got := placement.NewTable(nil, 2).Holders(7); len(got) != 0 {
		t.Fatalf("no members: holders %v", got)
	}
}

func BenchmarkNewTable12x2(b *testing.B) {
	ms := make([]string, 12)
	for i := range ms {
		ms[i] = fmt.Sprintf("12D3KooWpeer%02d", i)
	}
	for b.Loop() {
		placement.NewTable(ms, 2)
	}
}

// Tables of the same members and r are computed once and shared, whatever
// the order the members are given in; other members or r give another.
func TestTablesAreShared(t *testing.T) {
	a := placement.NewTable([]string{"p1", "p2", "p3"}, 2)
	if b := placement.NewTable([]string{"p3", "p1", "p2", "p1"}, 2); b != a {
		t.Fatal("the same members in another order built another table")
	}
	if c := placement.NewTable([]string{"p1", "p2"}, 2); c == a || len(c.Members()) != 2 {
		t.Fatal("other members shared a table")
	}
	if d := placement.NewTable([]string{"p1", "p2", "p3"}, 1); d == a || d.Replicas() != 1 {
		t.Fatal("another r shared a table")
	}
}
