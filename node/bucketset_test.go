package node

import (
	"math/rand/v2"
	"testing"

	"github.com/sessionmesh/sessionmesh/persist"
)

// TestBucketSetCount checks the popcount against the buckets each visits,
// on empty, full and random sets.
func TestBucketSetCount(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		s := newBucketSet()
		want := 0
		for b := range persist.Buckets {
			if i == 1 || i > 1 && r.IntN(i) == 0 {
				s.add(b)
				want++
			}
		}
		var visited []int
		s.each(func(b int) { visited = append(visited, b) })
		if got := s.count(); got != want || len(visited) != want {
			t.Fatalf("set %d: count %d, each visited %d, want %d", i, got, len(visited), want)
		}
		// each visits exactly the buckets in s, in ascending order (the
		// rounds' plans rely on it: sortedBuckets does not sort).
		for k, b := range visited {
			if !s.has(b) || k > 0 && visited[k-1] >= b {
				t.Fatalf("set %d: each visited %v", i, visited)
			}
		}
	}
}
