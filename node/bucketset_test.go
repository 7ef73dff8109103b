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
		visited := 0
		s.each(func(int) { visited++ })
		if got := s.count(); got != want || visited != want {
			t.Fatalf("set %d: count %d, each visited %d, want %d", i, got, visited, want)
		}
	}
}
