package persist

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestBackendsAgree drives a store in memory and one on disk (Badger) with
// the same random history of creates, writes, destroys, expiries, late and
// repeated deltas and collections, and checks after every step that both
// report the same results and hold the same sessions, bucket by bucket. A
// third store, in memory with Options.Serial, checks that committing each
// call by itself (the simulator's path) agrees with the committer's.
func TestBackendsAgree(t *testing.T) {
	// Five keys against a bound of four fields: some merges go over the
	// limits and must be refused the same way by both.
	mo := testOptions("")
	mo.Limits.MaxFields = 4
	mem := openStore(t, mo)
	so := mo
	so.Serial = true
	serial := openStore(t, so)
	do := testOptions(t.TempDir())
	do.Durability = DurabilityNone
	do.Limits.MaxFields = 4
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
	collected, refused := 0, 0
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
			case r < 6:
				s := live[rng.IntN(len(live))]
				d = s.Set(fmt.Sprintf("k%d", rng.IntN(5)), fmt.Appendf(nil, "v%d", step), c.Now(now))
			case r < 7:
				d = live[rng.IntN(len(live))].Remove(fmt.Sprintf("k%d", rng.IntN(5)), c.Now(now))
			case r < 8 && rng.IntN(2) == 0:
				d = live[rng.IntN(len(live))].Destroy(c.Now(now))
			case r < 8:
				// A touch rewrites the header (with every field).
				d = live[rng.IntN(len(live))].Touch(now)
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
		for _, r := range rm.Refused {
			if errors.Is(r.Err, crdt.ErrTooLarge) {
				refused++
			}
		}
		rd, err2 := disk.Apply(b, now)
		rs, err3 := serial.Apply(b, now)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("step %d: apply: %v / %v / %v", step, err1, err2, err3)
		}
		if !reflect.DeepEqual(summary(rm), summary(rd)) {
			t.Fatalf("step %d: results differ:\nmemory %v\ndisk   %v", step, summary(rm), summary(rd))
		}
		if !reflect.DeepEqual(summary(rm), summary(rs)) {
			t.Fatalf("step %d: results differ:\ncommitter %v\nserial    %v", step, summary(rm), summary(rs))
		}
		if rng.IntN(10) == 0 {
			budget := 1 + rng.IntN(20)
			n1, err1 := mem.CollectGarbage(now, budget)
			n2, err2 := disk.CollectGarbage(now, budget)
			n3, err3 := serial.CollectGarbage(now, budget)
			if err1 != nil || err2 != nil || err3 != nil || n1 != n2 || n1 != n3 {
				t.Fatalf("step %d: collected %d (%v) in memory, %d (%v) on disk, %d (%v) serial", step, n1, err1, n2, err2, n3, err3)
			}
			collected += n1
		}
		if dm, dd, ds := mem.Digests(), disk.Digests(), serial.Digests(); *dm != *dd || *dm != *ds {
			t.Fatalf("step %d: digests differ", step)
		}
		// The committer keeps hashes and sizes incrementally: they must be
		// what a full computation gives.
		for _, st := range []*Store{mem, disk, serial} {
			for _, d := range b.Sessions() {
				if e, ok := st.cache.entry(d.ID); ok {
					if e.hash != sessionHash(e.s) || e.size != crdt.EncodedSize(e.s) {
						t.Fatalf("step %d: %s: hash %x size %d, computed %x %d", step, d.ID, e.hash, e.size, sessionHash(e.s), crdt.EncodedSize(e.s))
					}
				}
			}
		}
	}
	if mem.Digests().Root == 0 || collected == 0 || refused == 0 {
		t.Fatalf("stored root %x, collected %d, refused %d: the history proves little", mem.Digests().Root, collected, refused)
	}
	// Digests rebuilt from the records at Open equal the incremental ones.
	want := *disk.Digests()
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	disk = openStore(t, do)
	if *disk.Digests() != want {
		t.Fatal("digests rebuilt at Open differ from the ones kept while writing")
	}
	// Several buckets in one scan give what one scan each gives.
	var some []int
	var each []string
	for b := Buckets - 1; b >= 0; b -= 3 {
		some = append(some, b)
	}
	for b := range Buckets {
		if b%3 == (Buckets-1)%3 {
			each = append(each, bucketIDs(t, disk, b)...)
		}
	}
	for _, st := range []*Store{mem, disk, serial} {
		var got []string
		err := st.Buckets(context.Background(), some, func(x *crdt.Session) error {
			got = append(got, x.ID+"="+encoded(t, x))
			return nil
		})
		if err != nil || !reflect.DeepEqual(got, each) {
			t.Fatalf("Buckets over %d buckets: %d sessions (%v), one scan each: %d", len(some), len(got), err, len(each))
		}
	}
	for b := range Buckets {
		if got, want := bucketIDs(t, mem, b), bucketIDs(t, disk, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("bucket %d: memory %v, disk %v", b, got, want)
		}
		if got, want := bucketIDs(t, serial, b), bucketIDs(t, disk, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("bucket %d: serial %v, disk %v", b, got, want)
		}
	}
	for id := range ids {
		a, err1 := disk.Get(id)
		disk.cache.remove(id)
		c, err2 := disk.Get(id) // from Badger
		if (err1 == nil) != (err2 == nil) || (err1 == nil && encoded(t, a) != encoded(t, c)) {
			t.Fatalf("%s: cached %v / stored %v", id, err1, err2)
		}
		// The in-memory backends hold what the cache does: their commits
		// of cached sessions update the record the cache points to.
		for _, st := range []*Store{mem, serial} {
			m, _ := st.Get(id)
			b, err := st.be.load(id)
			if err != nil || (m == nil) != (b == nil) || (m != nil && encoded(t, m) != encoded(t, b)) {
				t.Fatalf("%s: in memory, cached %v / backend %v (%v)", id, m, b, err)
			}
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

// failAfter is a backend whose commits write only the first n writes of a
// commit and then fail, as a Badger commit split in several transactions
// does when a later one fails.
type failAfter struct {
	backend
	n int
}

func (f *failAfter) commit(ws []write) (int, error) {
	if len(ws) <= f.n {
		return f.backend.commit(ws)
	}
	done, err := f.backend.commit(ws[:f.n])
	if err != nil {
		return done, err
	}
	return done, errors.New("disk on fire")
}

// TestPartialCommit: when only part of a group is written, what was written
// is reported and counted in the digests, and the rest is not.
func TestPartialCommit(t *testing.T) {
	s := openStore(t, testOptions(""))
	s.be = &failAfter{backend: s.be, n: 2}
	ds := []*crdt.Session{newSession("a", 1, t0, 2), newSession("b", 1, t0, 2), newSession("c", 1, t0, 2), newSession("d", 1, t0, 2)}
	res, err := s.Apply(crdt.NewBatch(ds...), t0)
	if err == nil {
		t.Fatal("a failed commit returned no error")
	}
	if len(res.Changes) != 2 || res.Changes[0].ID != "a" || res.Changes[1].ID != "b" {
		t.Fatalf("changes %+v, want the two written", res.Changes)
	}
	ref := openStore(t, testOptions(""))
	apply(t, ref, t0, ds[:2]...)
	if *s.Digests() != *ref.Digests() {
		t.Fatal("digests do not describe what was written")
	}
	for _, id := range []string{"c", "d"} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: %v, want not found", id, err)
		}
	}
	// Once the disk is back, the rest goes in and the stores agree.
	s.be = s.be.(*failAfter).backend
	apply(t, s, t0, ds...)
	apply(t, ref, t0, ds...)
	if *s.Digests() != *ref.Digests() {
		t.Fatal("digests differ after the retry")
	}
}

// smallTxn is a backend whose transactions take at most max writes, as
// Badger's do by size, and which can fail a commit; it records the ids of
// every commit it is asked for.
type smallTxn struct {
	backend
	max     int
	fail    func(ids []string) error
	commits [][]string
}

func (b *smallTxn) commit(ws []write) (int, error) {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.id
	}
	b.commits = append(b.commits, ids)
	if len(ws) > b.max {
		return 0, errTooBig
	}
	if b.fail != nil {
		if err := b.fail(ids); err != nil {
			return 0, err
		}
	}
	return b.backend.commit(ws)
}

// runGroup commits the batches as one group of Apply calls, as the
// committer does with calls that arrive together, and returns each call's
// result.
func runGroup(s *Store, now time.Time, batches ...[]*crdt.Session) []commitRes {
	group := make([]*commitReq, len(batches))
	for i, b := range batches {
		req := &commitReq{}
		for _, d := range b {
			req.items = append(req.items, item{d: d, now: now})
		}
		group[i] = req
	}
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return slices.Clone(s.commit.commitGroup(group)) // may be the committer's scratch
}

// TestGroupTooBigCutsBetweenCalls: a group too big for one transaction is
// cut between Apply calls, never inside one, so a call's deltas (a renewal)
// commit together or not at all.
func TestGroupTooBigCutsBetweenCalls(t *testing.T) {
	s := openStore(t, testOptions(""))
	be := &smallTxn{backend: s.be, max: 2}
	s.be = be
	renewal := []*crdt.Session{newSession("new", 1, t0, 1), newSession("old", 1, t0, 1)}
	apply(t, s, t0, renewal[1])
	renewal[1] = mustGet(t, s, "old").Destroy(crdt.NewClock(1, time.Second).Now(t0.Add(time.Millisecond)))
	be.commits = nil
	diskErr := errors.New("disk on fire")
	// The call after the renewal fails: a cut inside the renewal would
	// leave half of it written.
	be.fail = func(ids []string) error {
		if slices.Contains(ids, "y") {
			return diskErr
		}
		return nil
	}
	res := runGroup(s, t0.Add(time.Millisecond), []*crdt.Session{newSession("x", 1, t0, 1)}, renewal, []*crdt.Session{newSession("y", 1, t0, 1)})
	for _, ids := range be.commits {
		if slices.Contains(ids, "new") != slices.Contains(ids, "old") {
			t.Fatalf("commits %v: the renewal was cut", be.commits)
		}
	}
	if res[0].err != nil || res[1].err != nil || !errors.Is(res[2].err, diskErr) {
		t.Fatalf("errors %v, %v, %v: want only the third call to fail", res[0].err, res[1].err, res[2].err)
	}
	if len(res[1].res.Changes) != 2 {
		t.Fatalf("renewal changes %+v, want both", res[1].res.Changes)
	}
	if !mustGet(t, s, "old").IsDestroyed() || mustGet(t, s, "new").IsDestroyed() {
		t.Fatal("the renewal did not land whole")
	}
	if _, err := s.Get("y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("y: %v, want not found after its failed commit", err)
	}

	// A lone call too big for one transaction is still committed, in
	// several.
	be.fail, be.commits = nil, nil
	var many []*crdt.Session
	for i := range 7 {
		many = append(many, newSession(fmt.Sprintf("m%d", i), 1, t0, 1))
	}
	apply(t, s, t0.Add(time.Millisecond), many...)
	for _, d := range many {
		mustGet(t, s, d.ID)
	}
}

// TestSerialOverlappingCalls: Options.Serial promises that Apply calls
// which do overlap are still committed correctly, one at a time (run with
// -race). Concurrent writers to the same sessions end with the digests a
// store fed the same deltas one by one has.
func TestSerialOverlappingCalls(t *testing.T) {
	o := testOptions("")
	o.Serial = true
	s := openStore(t, o)
	ref := openStore(t, testOptions(""))
	const writers, each = 8, 40
	deltas := make([][]*crdt.Session, writers)
	for w := range writers {
		for i := range each {
			// Writers share sessions: their merges meet in the store.
			deltas[w] = append(deltas[w], newSession(fmt.Sprintf("s%02d", i%10), crdt.NodeID(w+1), t0.Add(time.Duration(i)*time.Millisecond), 2))
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range deltas[w] {
				if _, err := s.Apply(crdt.NewBatch(d), t0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, ds := range deltas {
		apply(t, ref, t0, ds...)
	}
	if *s.Digests() != *ref.Digests() || s.Len() != 10 {
		t.Fatalf("overlapping serial calls: %d sessions, digests equal %v", s.Len(), *s.Digests() == *ref.Digests())
	}
}
