package persist

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestBackendsAgree drives a store in memory and one on disk (Badger) with
// the same random history of creates, writes, destroys, expiries, late and
// repeated deltas and collections, and checks after every step that both
// report the same results and hold the same sessions, bucket by bucket.
func TestBackendsAgree(t *testing.T) {
	mem := openStore(t, testOptions(""))
	do := testOptions(t.TempDir())
	do.Durability = DurabilityNone
	disk := openStore(t, do)
	if _, ok := mem.be.(*memBackend); !ok {
		t.Fatalf("in-memory store uses %T", mem.be)
	}
	badgerDB(t, disk)

	rng := rand.New(rand.NewPCG(1, 2))
	clocks := []*crdt.Clock{crdt.NewClock(1, 5*time.Second), crdt.NewClock(2, 5*time.Second)}
	now := t0
	var live []*crdt.Session // create deltas, for later writes
	var history []*crdt.Session
	ids := map[string]bool{}
	collected := 0
	for step := range 600 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
		c := clocks[rng.IntN(len(clocks))]
		b := crdt.NewBatch()
		for range 1 + rng.IntN(8) {
			var d *crdt.Session
			switch r := rng.IntN(10); {
			case r < 3 || len(live) == 0:
				id := fmt.Sprintf("s%04d", rng.IntN(400))
				d = crdt.Create(id, c.Now(now), now.Add(time.Duration(5+rng.IntN(60))*time.Minute), 10*time.Minute)
				live = append(live, d)
			case r < 7:
				s := live[rng.IntN(len(live))]
				d = s.Set(fmt.Sprintf("k%d", rng.IntN(5)), fmt.Appendf(nil, "v%d", step), c.Now(now))
			case r < 8:
				d = live[rng.IntN(len(live))].Destroy(c.Now(now))
			default:
				// A delta seen before, redelivered late.
				d = history[rng.IntN(len(history))]
			}
			if b.Get(d.ID) == nil {
				b.Add(d)
				history = append(history, d)
				ids[d.ID] = true
			}
		}
		rm, err1 := mem.Apply(b, now)
		rd, err2 := disk.Apply(b, now)
		if err1 != nil || err2 != nil {
			t.Fatalf("step %d: apply: %v / %v", step, err1, err2)
		}
		if !reflect.DeepEqual(summary(rm), summary(rd)) {
			t.Fatalf("step %d: results differ:\nmemory %v\ndisk   %v", step, summary(rm), summary(rd))
		}
		if rng.IntN(10) == 0 {
			budget := 1 + rng.IntN(20)
			n1, err1 := mem.CollectGarbage(now, budget)
			n2, err2 := disk.CollectGarbage(now, budget)
			if err1 != nil || err2 != nil || n1 != n2 {
				t.Fatalf("step %d: collected %d (%v) in memory, %d (%v) on disk", step, n1, err1, n2, err2)
			}
			collected += n1
		}
		if dm, dd := mem.Digests(), disk.Digests(); *dm != *dd {
			t.Fatalf("step %d: digests differ", step)
		}
	}
	if mem.Digests().Root == 0 || collected == 0 {
		t.Fatalf("stored root %x, collected %d: the history proves nothing", mem.Digests().Root, collected)
	}
	for b := range Buckets {
		if got, want := bucketIDs(t, mem, b), bucketIDs(t, disk, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("bucket %d: memory %v, disk %v", b, got, want)
		}
	}
	for id := range ids {
		a, err1 := disk.Get(id)
		disk.cache.remove(id)
		c, err2 := disk.Get(id) // from Badger
		if (err1 == nil) != (err2 == nil) || (err1 == nil && encoded(t, a) != encoded(t, c)) {
			t.Fatalf("%s: cached %v / stored %v", id, err1, err2)
		}
	}
}

func summary(r Result) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, fmt.Sprintf("change %s %+v", c.ID, c))
	}
	for _, d := range r.Deferred {
		out = append(out, "deferred "+d.ID)
	}
	for _, f := range r.Refused {
		out = append(out, "refused "+f.ID+" "+f.Err.Error())
	}
	return out
}

func bucketIDs(t *testing.T, s *Store, b int) []string {
	t.Helper()
	var out []string
	err := s.Bucket(context.Background(), b, func(x *crdt.Session) error {
		out = append(out, x.ID+"="+encoded(t, x))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
