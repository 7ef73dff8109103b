package persist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestReviewMemRecordsStayRight: the in-memory backend's records, which
// cache nodes point to (memRecord), hold what the cache and a store
// without that shortcut hold, through what breaks the link between a
// cache entry and its record: a cache so small that nearly every commit
// evicts (the next one finds its session through a read, without a
// record), sessions dropped (Drop) or collected and then created again
// under the same id, destroyed ones, and the committer's and the serial
// paths. Meanwhile readers take states from the store without locks and
// check that a state once returned never changes.
func TestReviewMemRecordsStayRight(t *testing.T) {
	small := testOptions("")
	small.CacheSessions, small.CacheBytes = cacheShards, 64<<10 // one entry a shard
	smallSerial := small
	smallSerial.Serial = true
	none := testOptions("")
	none.CacheBytes = 0 // no cache: every commit goes through the map
	stores := []*Store{openStore(t, testOptions("")), openStore(t, small), openStore(t, smallSerial), openStore(t, none)}
	names := []string{"default cache", "tiny cache", "tiny cache, serial", "no cache"}
	ref := stores[len(stores)-1]

	const ids = 300
	id := func(i int) string { return fmt.Sprintf("rv-%03d", i) }

	// Readers: states returned by Get are checked again later.
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			type seen struct {
				s   *crdt.Session
				enc string
			}
			var ring [64]seen
			for n := 0; !stop.Load(); n++ {
				st := stores[rng.IntN(len(stores)-1)]
				s, err := st.Get(id(rng.IntN(ids)))
				if err != nil || s == nil {
					continue
				}
				b, err := crdt.MarshalSession(s, crdt.DefaultLimits())
				if err != nil {
					t.Errorf("reader: encode: %v", err)
					return
				}
				slot := &ring[n%len(ring)]
				if slot.s != nil {
					again, err := crdt.MarshalSession(slot.s, crdt.DefaultLimits())
					if err != nil || string(again) != slot.enc {
						t.Errorf("reader: a state returned earlier changed (%v)", err)
						return
					}
				}
				*slot = seen{s, string(b)}
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	rng := rand.New(rand.NewPCG(3, 4))
	clock := crdt.NewClock(1, 5*time.Second)
	now := t0
	live := map[int]*crdt.Session{}
	dropped, recreated, collected := 0, 0, 0
	gone := map[int]bool{}
	for step := range 400 {
		now = now.Add(time.Duration(rng.IntN(30)) * time.Second)
		b := crdt.NewBatch()
		for range 1 + rng.IntN(10) {
			i := rng.IntN(ids)
			var d *crdt.Session
			switch s := live[i]; {
			case s == nil || rng.IntN(12) == 0:
				d = crdt.Create(id(i), clock.Now(now), now.Add(time.Duration(2+rng.IntN(30))*time.Minute), 10*time.Minute)
				if gone[i] {
					recreated++
					delete(gone, i)
				}
				live[i] = d
			case rng.IntN(15) == 0:
				d = s.Destroy(clock.Now(now))
			default:
				d = s.Set(fmt.Sprintf("k%d", rng.IntN(6)), fmt.Appendf(nil, "v%d-%d", step, rng.IntN(1<<20)), clock.Now(now))
			}
			if b.Get(d.ID) == nil {
				b.Add(d)
			}
		}
		for k, st := range stores {
			if _, err := st.Apply(b, now); err != nil {
				t.Fatalf("step %d: %s: apply: %v", step, names[k], err)
			}
		}
		if rng.IntN(4) == 0 {
			// Drop a few sessions as a holder that handed them off does.
			var hs []Handed
			for range 1 + rng.IntN(6) {
				i := rng.IntN(ids)
				if s, _ := ref.Get(id(i)); s != nil {
					hs = append(hs, Handed{ID: id(i), Hash: sessionHash(s)})
					gone[i] = true
					delete(live, i)
				}
			}
			for k, st := range stores {
				n, err := st.Drop(hs)
				if err != nil || n != len(hs) {
					t.Fatalf("step %d: %s: dropped %d of %d (%v)", step, names[k], n, len(hs), err)
				}
			}
			dropped += len(hs)
		}
		if rng.IntN(8) == 0 {
			n0, _ := ref.CollectGarbage(now, 1000)
			for k, st := range stores[:len(stores)-1] {
				if n, err := st.CollectGarbage(now, 1000); err != nil || n != n0 {
					t.Fatalf("step %d: %s: collected %d (%v), without a cache %d", step, names[k], n, err, n0)
				}
			}
			collected += n0
			for i := range live {
				if s, _ := ref.Get(id(i)); s == nil {
					delete(live, i)
					gone[i] = true
				}
			}
		}
		if testing.Short() && step%8 != 7 {
			continue // every step's check is for the long run; -short checks every 8th
		}
		for i := range ids {
			want, err := ref.be.load(id(i))
			if err != nil {
				t.Fatal(err)
			}
			for k, st := range stores {
				got, err := st.Get(id(i))
				if errors.Is(err, ErrNotFound) {
					got, err = nil, nil
				}
				inBackend, err2 := st.be.load(id(i))
				if err != nil || err2 != nil || !sameState(t, got, want) || !sameState(t, inBackend, want) {
					t.Fatalf("step %d: %s: %s: read %v, backend holds %v, want %v (%v %v)", step, names[k], id(i), got, inBackend, want, err, err2)
				}
			}
		}
		for k, st := range stores {
			if *st.Digests() != *ref.Digests() {
				t.Fatalf("step %d: %s: digests differ from the store without a cache", step, names[k])
			}
		}
	}
	for k, st := range stores {
		for bk := range Buckets {
			if got, want := bucketIDs(t, st, bk), bucketIDs(t, ref, bk); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: bucket %d scans %v, want %v", names[k], bk, got, want)
			}
		}
	}
	if dropped == 0 || recreated == 0 || collected == 0 {
		t.Fatalf("dropped %d, re-created %d, collected %d: the history proves little", dropped, recreated, collected)
	}
}

func sameState(t *testing.T, a, b *crdt.Session) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return encoded(t, a) == encoded(t, b)
}
