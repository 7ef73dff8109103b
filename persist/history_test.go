package persist

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// churn runs a store through rounds of perRound sessions created (in
// batches of 500, as gossip and anti-entropy bring them), half of them
// destroyed, then all collected once past their deadline, as a busy peer
// does in a few hours. It returns the time after the last round; the store
// then holds no session.
func churn(tb testing.TB, s *Store, start time.Time, rounds, perRound int) time.Time {
	tb.Helper()
	now := start
	clk := crdt.NewClock(7, s.opts.MaxDrift)
	next := 0
	for range rounds {
		var created []*crdt.Session
		batch := crdt.NewBatch()
		for range perRound {
			id := fmt.Sprintf("churn-%024d", next)
			next++
			d := crdt.Create(id, clk.Now(now), now.Add(10*time.Minute), 5*time.Minute)
			for f := range 10 {
				_, _ = d.Merge(d.Set(fmt.Sprintf("f%02d", f), fmt.Appendf(nil, "%090d", next*10+f), clk.Now(now)))
			}
			created = append(created, d)
			batch.Add(d)
			if batch.Len() == 500 {
				applyBatch(tb, s, batch, now)
				batch = crdt.NewBatch()
			}
		}
		applyBatch(tb, s, batch, now)
		now = now.Add(time.Minute)
		batch = crdt.NewBatch()
		for i, d := range created {
			if i%2 == 0 {
				batch.Add(d.Destroy(clk.Now(now)))
			}
			if batch.Len() == 500 {
				applyBatch(tb, s, batch, now)
				batch = crdt.NewBatch()
			}
		}
		applyBatch(tb, s, batch, now)
		// Past every deadline (and MaxDrift): collection removes them all,
		// tombstones and expired sessions alike, in passes of GCBatch as the
		// node runs them.
		now = now.Add(10 * time.Minute)
		for {
			n, err := s.CollectGarbage(now, s.opts.GCBatch)
			if err != nil {
				tb.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		s.reclaimDisk()
	}
	return now
}

func applyBatch(tb testing.TB, s *Store, b *crdt.Batch, now time.Time) {
	tb.Helper()
	if b.Len() == 0 {
		return
	}
	res, err := s.Apply(b, now)
	if err != nil {
		tb.Fatal(err)
	}
	if len(res.Refused)+len(res.Deferred) > 0 {
		tb.Fatalf("refused %v, deferred %d", res.Refused, len(res.Deferred))
	}
}

var allBuckets = func() []int {
	out := make([]int, Buckets)
	for i := range out {
		out[i] = i
	}
	return out
}()

// fullScan reads every bucket, as a repair of a peer that lost everything
// does, and returns how many sessions it met.
func fullScan(tb testing.TB, s *Store) int {
	tb.Helper()
	n := 0
	if err := s.Buckets(context.Background(), allBuckets, func(*crdt.Session) error { n++; return nil }); err != nil {
		tb.Fatal(err)
	}
	return n
}

// repair does a peer's part of an anti-entropy round with a peer that
// holds n sessions it lacks, in both roles: it reads its own sessions of
// every bucket where they differ (to send them), merges them in chunks of
// ~64 KiB (the node's SyncChunkBytes), and reads those buckets again (to
// answer the other peer's want). tag makes the sessions new to the store.
func repair(tb testing.TB, s *Store, now time.Time, tag string, n int) {
	tb.Helper()
	clk := crdt.NewClock(9, s.opts.MaxDrift)
	want := map[int]bool{}
	var ds []*crdt.Session
	for i := range n {
		id := fmt.Sprintf("repair-%s-%020d", tag, i)
		d := crdt.Create(id, clk.Now(now), now.Add(time.Hour), 30*time.Minute)
		for f := range 10 {
			_, _ = d.Merge(d.Set(fmt.Sprintf("f%02d", f), fmt.Appendf(nil, "%090d", i*10+f), clk.Now(now)))
		}
		want[BucketOf(id)] = true
		ds = append(ds, d)
	}
	buckets := make([]int, 0, len(want))
	for b := range want {
		buckets = append(buckets, b)
	}
	scan := func() {
		if err := s.Buckets(context.Background(), buckets, func(*crdt.Session) error { return nil }); err != nil {
			tb.Fatal(err)
		}
	}
	scan()
	for len(ds) > 0 {
		k := min(50, len(ds))
		applyBatch(tb, s, crdt.NewBatch(ds[:k]...), now)
		ds = ds[k:]
	}
	scan()
}

// BenchmarkHistory compares a store after heavy churn (20 rounds of 5,000
// sessions created, destroyed or expired, and collected: ~110 MB written)
// with a fresh one holding the same live data (none), for a full scan and
// for an anti-entropy repair bringing 2,000 sessions:
//
//	go test ./persist -run '^$' -bench History -benchtime 5x
func BenchmarkHistory(b *testing.B) {
	for _, c := range []struct {
		name   string
		rounds int
	}{{"fresh", 0}, {"churned", 20}} {
		setup := func(b *testing.B) (*Store, time.Time) {
			o := testOptions(b.TempDir())
			o.Durability = DurabilityNone
			s := openStore(b, o)
			return s, churn(b, s, t0, c.rounds, 5000)
		}
		b.Run("scan/"+c.name, func(b *testing.B) {
			s, _ := setup(b)
			for b.Loop() {
				if n := fullScan(b, s); n != 0 {
					b.Fatalf("scan met %d sessions, want none", n)
				}
			}
		})
		b.Run("scan10000live/"+c.name, func(b *testing.B) {
			s, now := setup(b)
			clk := crdt.NewClock(3, s.opts.MaxDrift)
			batch := crdt.NewBatch()
			for i := range 10_000 {
				d := crdt.Create(fmt.Sprintf("live-%024d", i), clk.Now(now), now.Add(time.Hour), 30*time.Minute)
				_, _ = d.Merge(d.Set("user", fmt.Appendf(nil, "%090d", i), clk.Now(now)))
				batch.Add(d)
				if batch.Len() == 500 {
					applyBatch(b, s, batch, now)
					batch = crdt.NewBatch()
				}
			}
			for b.Loop() {
				if n := fullScan(b, s); n != 10_000 {
					b.Fatalf("scan met %d sessions, want 10000", n)
				}
			}
		})
		b.Run("repair2000/"+c.name, func(b *testing.B) {
			s, now := setup(b)
			i := 0
			for b.Loop() {
				repair(b, s, now, fmt.Sprint(i), 2000)
				i++
				// Back to a store holding nothing, untimed, so that every
				// repair reads empty buckets as the first does.
				b.StopTimer()
				if n, err := s.CollectGarbage(now.Add(2*time.Hour), 1<<20); err != nil || n != 2000 {
					b.Fatalf("collected %d, %v", n, err)
				}
				b.StartTimer()
			}
		})
	}
}

// TestScansSeekOnlyForward: after churn, a scan costs what the live
// sessions it reads cost, not what the dead records churn left behind do.
// Badger finds the first live record at or after a sought key by stepping
// over every delete marker and overwritten version on the way, so a scan
// that sought each bucket afresh stepped over the same dead records once
// per bucket: after the churn below, a full scan of an empty store took a
// thousand times what it takes on a fresh store, and a repair two hundred
// times. What keeps the work linear is where scans seek, and that is what
// this asserts (BenchmarkHistory has the timings): a scan seeks no bucket
// its store knows to be empty, and seeks only forward, at most once for
// each bucket it reads.
func TestScansSeekOnlyForward(t *testing.T) {
	if testing.Short() {
		t.Skip("churns a store on disk for a few seconds")
	}
	o := testOptions(t.TempDir())
	o.Durability = DurabilityNone
	s := openStore(t, o)
	now := churn(t, s, t0, 4, 2500)
	be, ok := s.be.(*badgerBackend)
	if !ok {
		t.Fatalf("backend is %T, want Badger", s.be)
	}
	type seek struct{ key, at []byte }
	var scans [][]seek // the seeks of each scan
	be.seekHook = func(key, at []byte) {
		if key == nil {
			scans = append(scans, nil)
			return
		}
		scans[len(scans)-1] = append(scans[len(scans)-1], seek{bytes.Clone(key), bytes.Clone(at)})
	}
	defer func() { be.seekHook = nil }()
	// checkForward checks every scan since the last call and returns how
	// many there were.
	checkForward := func(what string, maxSeeks int) int {
		t.Helper()
		n := len(scans)
		for i, seeks := range scans {
			if len(seeks) > maxSeeks {
				t.Errorf("%s: scan %d sought %d keys, want at most %d (one per bucket it reads)", what, i, len(seeks), maxSeeks)
			}
			for k, sk := range seeks {
				if k > 0 && bytes.Compare(sk.key, sk.at) <= 0 {
					t.Errorf("%s: scan %d sought %x back from %x, where its iterator rested: scans must only seek forward", what, i, sk.key, sk.at)
				}
			}
		}
		scans = nil
		return n
	}

	if n := fullScan(t, s); n != 0 {
		t.Fatalf("scan of the churned store met %d sessions, want none", n)
	}
	if n := checkForward("full scan of an empty store", 0); n != 0 {
		t.Errorf("a full scan of a store known to hold nothing opened %d backend scans, want none", n)
	}

	// A repair of 2,000 sessions reads the buckets they go to before and
	// after merging them: the first scan finds them empty and seeks
	// nothing, the second reads what it merged.
	repair(t, s, now, "0", 2000)
	if n := checkForward("repair", Buckets); n != 1 {
		t.Errorf("a repair opened %d backend scans, want 1 (its first scan reads buckets known empty)", n)
	}
	held := 0
	for b := range Buckets {
		if s.digests.holds(b) {
			held++
		}
	}
	if n := fullScan(t, s); n != 2000 {
		t.Fatalf("full scan after the repair met %d sessions, want 2000", n)
	}
	checkForward("full scan after a repair", held)
}

// TestBucketCountsFollowTheData: the per-bucket counts that let scans skip
// empty buckets say non-empty exactly where the backend holds a readable
// session, through creates, tombstones, collection and a reopen.
func TestBucketCountsFollowTheData(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	s := openStore(t, o)
	check := func(s *Store, when string) {
		t.Helper()
		var held [Buckets]bool
		err := s.be.scanBuckets(context.Background(), allBuckets, func(x *crdt.Session) error {
			held[BucketOf(x.ID)] = true
			return nil
		}, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		for b := range Buckets {
			if held[b] != s.digests.holds(b) {
				t.Fatalf("%s: bucket %d holds a session: %v, counted: %v", when, b, held[b], s.digests.holds(b))
			}
		}
	}
	clk := crdt.NewClock(1, o.MaxDrift)
	var ds []*crdt.Session
	for i := range 3000 {
		life := time.Hour
		if i%3 == 0 {
			life = time.Minute
		}
		d := crdt.Create(fmt.Sprintf("count-%d", i), clk.Now(t0), t0.Add(life), life)
		ds = append(ds, d)
	}
	applyBatch(t, s, crdt.NewBatch(ds...), t0)
	check(s, "after creates")
	var tombs []*crdt.Session
	for i, d := range ds {
		if i%5 == 0 {
			tombs = append(tombs, d.Destroy(clk.Now(t0.Add(time.Second))))
		}
	}
	applyBatch(t, s, crdt.NewBatch(tombs...), t0.Add(time.Second))
	check(s, "after tombstones")
	if n, err := s.CollectGarbage(t0.Add(2*time.Minute), 1<<20); err != nil || n != 1000 {
		t.Fatalf("collected %d, %v; want 1000", n, err)
	}
	check(s, "after collection")
	// An unreadable record counts for nothing, as in the digests.
	putRaw(t, s, "count-1", []byte("junk"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	check(s, "after reopen")
	if n, err := s.CollectGarbage(t0.Add(2*time.Hour), 1<<20); err != nil || n != 2000 {
		t.Fatalf("collected %d, %v; want 2000", n, err)
	}
	check(s, "after collecting everything")
	if n := fullScan(t, s); n != 0 {
		t.Fatalf("scan met %d sessions in an empty store", n)
	}
}
