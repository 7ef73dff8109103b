package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestReviewVersionCoversAtScale: versionCovers (a lookup per entry of
// need) answers as the walk and as Version().Covers over states the
// smaller model test does not reach: hundreds of writers (the binary
// searches of the packed base and of an overlay of more than 8 entries),
// node ids using all 64 bits, removed version registers, keys that sort
// just before and after the prefix, and needs that are empty, longer
// than MaxVersionEntries, or ask for writers the state has never seen.
func TestReviewVersionCoversAtScale(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pool := rapid.SliceOfNDistinct(rapid.Uint64(), 1, 400, func(n uint64) uint64 { return n }).Draw(t, "pool")
		node := func(label string) NodeID {
			return NodeID(pool[rapid.IntRange(0, len(pool)-1).Draw(t, label)])
		}
		keys := map[string]Field{}
		for i := range rapid.IntRange(0, 300).Draw(t, "base") {
			n := node("node")
			f := Field{TS: Timestamp{Time: uint64(rapid.IntRange(0, 5).Draw(t, "time")), Node: n}, Removed: rapid.IntRange(0, 9).Draw(t, "rm") == 0}
			k := VersionKey(n)
			switch rapid.IntRange(0, 9).Draw(t, "kind") {
			case 0:
				k = fmt.Sprintf("%s%d", VersionKeyPrefix[:len(VersionKeyPrefix)-1], i) // just before the prefix
			case 1:
				k = fmt.Sprintf("\x00sm/w%d", i) // just after
			case 2:
				k = fmt.Sprintf("field%d", i)
			case 3:
				k = VersionKey(n) + "x" // longer: not an entry
			}
			keys[k] = f
		}
		fs := FieldsOf(keys)
		// Registers written again, one by one (the overlay) or joined.
		for range rapid.IntRange(0, 60).Draw(t, "writes") {
			n := node("wnode")
			f := Field{TS: Timestamp{Time: uint64(rapid.IntRange(0, 5).Draw(t, "wtime")), Node: n}, Removed: rapid.IntRange(0, 9).Draw(t, "wrm") == 0}
			if rapid.Bool().Draw(t, "join") {
				fs, _ = fs.Join(FieldsOf(map[string]Field{VersionKey(n): f}))
			} else {
				fs = fs.With(VersionKey(n), f)
			}
		}
		var need Version
		for range rapid.IntRange(0, 120).Draw(t, "need") {
			n := node("nnode")
			if rapid.IntRange(0, 9).Draw(t, "stranger") == 0 {
				n = NodeID(rapid.Uint64().Draw(t, "strangernode"))
			}
			need = append(need, VersionEntry{Node: n, Time: uint64(rapid.IntRange(0, 5).Draw(t, "ntime"))})
		}
		if rapid.IntRange(0, 3).Draw(t, "sorted") > 0 {
			slices.SortFunc(need, func(a, b VersionEntry) int { return cmp.Compare(a.Node, b.Node) })
			need = slices.CompactFunc(need, func(a, b VersionEntry) bool { return a.Node == b.Node })
		}
		if checkVersionCovers(t, fs, need) {
			// A need made of the state's own version is covered, and so
			// is every prefix of it.
			v := fs.version()
			if !fs.versionCovers(v) || !fs.versionCovers(v[:len(v)/2]) {
				t.Fatalf("the state's own version (%d entries) is not covered", len(v))
			}
			if len(v) > 0 {
				more := slices.Clone(v)
				more[len(more)/2].Time++
				if fs.versionCovers(more) {
					t.Fatalf("a version one step ahead of the state's own is covered")
				}
			}
		}
	})
}
