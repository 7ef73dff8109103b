package persist

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// deltasFor builds a realistic stream: creates, field writes from several
// nodes, touches and a few destroys.
func deltasFor(n int) []*crdt.Session {
	var out []*crdt.Session
	for i := range n {
		id := fmt.Sprintf("sess-%04d", i)
		s := newSession(id, 1, t0, 2)
		out = append(out, s)
		for node := crdt.NodeID(1); node <= 3; node++ {
			out = append(out, s.Set("k", []byte(fmt.Sprintf("from-%d", node)), crdt.NewTimestamp(t0.UnixMilli()+int64(i%7), 0, node)))
		}
		out = append(out, s.Touch(t0.Add(time.Duration(i)*time.Millisecond)))
		if i%10 == 0 {
			out = append(out, s.Destroy(crdt.NewTimestamp(t0.UnixMilli()+3, 0, 2)))
		}
	}
	return out
}

// TestDigestsConverge feeds two stores the same deltas in different orders,
// batchings and with duplicates: their digests must be equal, and differ in
// exactly the bucket of a session written on one side only.
func TestDigestsConverge(t *testing.T) {
	ds := deltasFor(300)
	a := openStore(t, testOptions(""))
	b := openStore(t, testOptions(""))
	for _, d := range ds {
		apply(t, a, t0, d)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := append([]*crdt.Session(nil), ds...)
	shuffled = append(shuffled, ds[:50]...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		n := min(len(shuffled), 1+rng.IntN(40))
		apply(t, b, t0, shuffled[:n]...)
		shuffled = shuffled[n:]
	}
	da, db := a.Digests(), b.Digests()
	if *da != *db {
		t.Fatal("stores with the same sessions have different digests")
	}
	if da.Root == 0 {
		t.Fatal("root digest of a non-empty store is zero")
	}

	extra := newSession("only-on-b", 1, t0, 1)
	apply(t, b, t0, extra)
	da, db = a.Digests(), b.Digests()
	var differ []int
	for i := range da.Buckets {
		if da.Buckets[i] != db.Buckets[i] {
			differ = append(differ, i)
		}
	}
	if len(differ) != 1 || differ[0] != BucketOf(extra.ID) || da.Root == db.Root {
		t.Fatalf("differing buckets %v, want only %d", differ, BucketOf(extra.ID))
	}
	// The differing bucket lists the missing session; repairing a from it
	// brings the digests back together.
	var repair []*crdt.Session
	if err := b.Bucket(context.Background(), differ[0], func(s *crdt.Session) error {
		repair = append(repair, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range repair {
		found = found || s.ID == extra.ID
	}
	if !found {
		t.Fatalf("bucket %d does not list %s", differ[0], extra.ID)
	}
	apply(t, a, t0, repair...)
	if *a.Digests() != *b.Digests() {
		t.Fatal("digests still differ after repairing the bucket")
	}
}

// TestConcurrentApply runs writers on the same sessions at once, with no
// lock of ours: nothing may be lost, and the cache, the disk and the digests
// must agree afterwards.
func TestConcurrentApply(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	const sessions, writers, writes = 8, 6, 60
	for i := range sessions {
		apply(t, s, t0, newSession(fmt.Sprintf("c%d", i), 9, t0, 0))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				id := fmt.Sprintf("c%d", i%sessions)
				base, err := s.Get(id)
				if err != nil {
					t.Error(err)
					return
				}
				d := base.Set(fmt.Sprintf("w%d-%d", w, i), []byte("v"), crdt.NewTimestamp(t0.UnixMilli()+int64(i), 0, crdt.NodeID(w+1)))
				if _, err := s.Apply(crdt.NewBatch(d), t0); err != nil {
					t.Error(err)
					return
				}
				// Read your writes through the cache.
				if got, err := s.Get(id); err != nil {
					t.Error(err)
				} else if _, ok := got.Get(fmt.Sprintf("w%d-%d", w, i)); !ok {
					t.Errorf("write w%d-%d not visible to its writer", w, i)
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	cached := map[string]string{}
	for i := range sessions {
		got := mustGet(t, s, fmt.Sprintf("c%d", i))
		total += len(got.Keys())
		cached[got.ID] = encoded(t, got)
	}
	if total != writers*writes {
		t.Fatalf("%d fields stored, want %d", total, writers*writes)
	}
	before := s.Digests()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	o.CacheSessions = 0
	s2 := openStore(t, o)
	for id, enc := range cached {
		if encoded(t, mustGet(t, s2, id)) != enc {
			t.Fatalf("cache and disk disagree on %s", id)
		}
	}
	if *s2.Digests() != *before {
		t.Fatal("digests maintained by concurrent writers differ from a rebuild")
	}
}
