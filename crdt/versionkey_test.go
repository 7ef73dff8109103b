package crdt

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestVersionKeySpelling: the key is the prefix and the node in 16
// lower-case hex digits, whatever the cache of the last key holds.
func TestVersionKeySpelling(t *testing.T) {
	for _, n := range []NodeID{0, 1, 0xabcdef, 0x1234567890abcdef, math.MaxUint64, 1, 1} {
		want := VersionKeyPrefix + fmt.Sprintf("%016x", uint64(n))
		if got := VersionKey(n); got != want {
			t.Fatalf("VersionKey(%#x) = %q, want %q", uint64(n), got, want)
		}
		if got, ok := parseNodeHex(VersionKey(n)[len(VersionKeyPrefix):]); !ok || got != uint64(n) {
			t.Fatalf("VersionKey(%#x) parses back as %#x, %v", uint64(n), got, ok)
		}
	}
}

// TestVersionCoversLookups: versionCovers, which looks need's entries up
// by key, answers as the walk of every entry does and, for a need that is
// a Version, as Version().Covers: over fields holding valid entries, entries
// with a zero time, keys that only look like entries, and plain fields,
// both in a packed base and in an overlay, with needs in order, out of
// order, repeated, or with zero times.
func TestVersionCoversLookups(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		keys := map[string]Field{}
		for i := range rapid.IntRange(0, 8).Draw(t, "n") {
			node := NodeID(rapid.IntRange(1, 4).Draw(t, "node"))
			tm := uint64(rapid.IntRange(0, 3).Draw(t, "time"))
			k := VersionKey(node)
			switch rapid.IntRange(0, 5).Draw(t, "kind") {
			case 0:
				k = VersionKeyPrefix + fmt.Sprintf("%016X", uint64(node)+10) // upper case: not an entry
			case 1:
				k = VersionKeyPrefix + fmt.Sprintf("%x", uint64(node)) // short: not an entry
			case 2:
				k = fmt.Sprintf("k%d", i)
			}
			keys[k] = Field{TS: Timestamp{Time: tm, Node: node}}
		}
		fs := FieldsOf(keys)
		// Some of the registers written again, through the overlay.
		for range rapid.IntRange(0, 3).Draw(t, "writes") {
			node := NodeID(rapid.IntRange(1, 4).Draw(t, "wnode"))
			fs = fs.With(VersionKey(node), Field{TS: Timestamp{Time: uint64(rapid.IntRange(0, 3).Draw(t, "wtime")), Node: node}})
		}
		var need Version
		for range rapid.IntRange(0, 4).Draw(t, "need") {
			need = append(need, VersionEntry{Node: NodeID(rapid.IntRange(1, 4).Draw(t, "nnode")), Time: uint64(rapid.IntRange(0, 3).Draw(t, "ntime"))})
		}
		if rapid.Bool().Draw(t, "sorted") {
			slices.SortFunc(need, func(a, b VersionEntry) int { return cmp.Compare(a.Node, b.Node) })
		}
		checkVersionCovers(t, fs, need)
	})
}

// checkVersionCovers fails t unless fs.versionCovers(need) answers as the
// walk over every register does and, when need is a Version (sorted,
// distinct nodes, no zero time), as Version().Covers does. It returns
// whether need was a Version.
func checkVersionCovers(t *rapid.T, fs Fields, need Version) bool {
	got, walk := fs.versionCovers(need), fs.versionCoversWalk(need)
	if got != walk {
		t.Fatalf("versionCovers(%d entries) = %v, the walk says %v, fields %d", len(need), got, walk, fs.Len())
	}
	for i, e := range need {
		if e.Time == 0 || i > 0 && need[i-1].Node >= e.Node {
			return false
		}
	}
	if want := fs.version().Covers(need); got != want {
		t.Fatalf("versionCovers(%d entries) = %v, Version().Covers says %v, fields %d", len(need), got, want, fs.Len())
	}
	return true
}
