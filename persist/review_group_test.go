package persist

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Commit groups of every size the committer's reused bookkeeping treats
// differently (a few sessions searched in a slice, more than 16 through a
// map, past 256 the scratch dropped after the group), with deltas changing
// up to six fields of a session (past the two a staged state holds without
// an allocation), several deltas of one session in a group (concurrent
// Apply calls), destroys and redeliveries: every store (memory, serial,
// Badger) ends with the state a plain merge of the same deltas gives, the
// same digests, and Badger's reopened store with both.
func TestReviewGroupsOfEverySizeAgree(t *testing.T) {
	mem := openStore(t, testOptions(""))
	so := testOptions("")
	so.Serial = true
	serial := openStore(t, so)
	dir := t.TempDir()
	do := testOptions(dir)
	do.Durability = DurabilityNone
	disk := openStore(t, do)
	stores := map[string]*Store{"memory": mem, "serial": serial, "badger": disk}

	rng := rand.New(rand.NewPCG(3, 4))
	clocks := []*crdt.Clock{crdt.NewClock(1, 5*time.Second), crdt.NewClock(2, 5*time.Second)}
	now := t0
	want := map[string]*crdt.Session{}
	creates := map[string]*crdt.Session{}
	var history []*crdt.Session
	merge := func(d *crdt.Session) {
		cur := want[d.ID]
		if cur == nil {
			cur = &crdt.Session{ID: d.ID}
			want[d.ID] = cur
		}
		if _, err := cur.Merge(d); err != nil {
			t.Fatalf("reference merge: %v", err)
		}
	}
	sizes := []int{1, 2, 3, 15, 16, 17, 40, 255, 256, 257, 600, 5, 1}
	for step, size := range sizes {
		now = now.Add(time.Second)
		// Three calls at once, each a batch of size deltas (some ids in
		// more than one call): the concurrent committer may group them.
		var calls []*crdt.Batch
		for range 3 {
			b := crdt.NewBatch()
			for b.Len() < size {
				c := clocks[rng.IntN(len(clocks))]
				id := fmt.Sprintf("s%04d", rng.IntN(700))
				var d *crdt.Session
				switch r := rng.IntN(20); {
				case creates[id] == nil:
					d = crdt.Create(id, c.Now(now), now.Add(time.Hour), 30*time.Minute)
					creates[id] = d
				case r < 14:
					d = creates[id].Header()
					for range 1 + rng.IntN(6) {
						k := fmt.Sprintf("k%d", rng.IntN(8))
						if rng.IntN(5) == 0 {
							d = crdt.NewBatch(d, creates[id].Remove(k, c.Now(now))).Get(id)
						} else {
							d = crdt.NewBatch(d, creates[id].Set(k, fmt.Appendf(nil, "v%d-%d", step, rng.IntN(1000)), c.Now(now))).Get(id)
						}
					}
				case r < 15:
					d = creates[id].Destroy(c.Now(now))
				case r < 17:
					d = creates[id].Touch(now)
				default:
					if len(history) == 0 {
						continue
					}
					d = history[rng.IntN(len(history))]
				}
				if b.Get(d.ID) == nil {
					b.Add(d)
				}
			}
			for _, d := range b.Sessions() {
				history = append(history, d)
				merge(d)
			}
			calls = append(calls, b)
		}
		for name, s := range stores {
			errs := make(chan error, len(calls))
			for _, b := range calls {
				go func() {
					res, err := s.Apply(b, now)
					if err == nil && len(res.Refused)+len(res.Deferred) > 0 {
						err = fmt.Errorf("refused %v, deferred %d", res.Refused, len(res.Deferred))
					}
					errs <- err
				}()
			}
			for range calls {
				if err := <-errs; err != nil {
					t.Fatalf("%s, groups of %d: %v", name, size, err)
				}
			}
		}
	}
	check := func(name string, s *Store) {
		t.Helper()
		for id, w := range want {
			got, err := s.Get(id)
			if err != nil {
				t.Fatalf("%s: get %s: %v", name, id, err)
			}
			if got == nil || !got.Equal(w) {
				t.Fatalf("%s: %s is\n%+v\nwant\n%+v", name, id, got, w)
			}
		}
		if s.Root() != mem.Root() || *s.Digests() != *mem.Digests() {
			t.Fatalf("%s: digests differ from the memory store's", name)
		}
	}
	for name, s := range stores {
		check(name, s)
	}
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	check("badger reopened", openStore(t, do))
}
