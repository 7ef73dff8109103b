package persist

import (
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

// TestScanCostIndependentOfHistory: after churn, a full scan of a store
// holding nothing and an anti-entropy repair bringing 2,000 sessions cost
// about what they cost on a fresh store. Before scans skipped empty buckets
// and sought only forward, the churn below made the scan a thousand times
// slower and the repair two hundred times. The bound is loose (an order of
// magnitude) for noisy machines; BenchmarkHistory has the figures.
func TestScanCostIndependentOfHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("churns a store on disk for a few seconds")
	}
	open := func() *Store {
		o := testOptions(t.TempDir())
		o.Durability = DurabilityNone
		return openStore(t, o)
	}
	fresh, churned := open(), open()
	freshNow := t0
	churnedNow := churn(t, churned, t0, 4, 2500)
	// The fastest of a few runs: what the work costs, without the pauses
	// of a busy machine or of Badger's background work (a write stall
	// while a memtable is flushed took one run to 20 times the others).
	// A run beyond giveUp is a failure however the others go: the measure
	// stops there, as a regressed scan takes seconds.
	fastest := func(giveUp time.Duration, run func(i int) time.Duration) time.Duration {
		best := time.Duration(1 << 62)
		for i := range 5 {
			if best = min(best, run(i)); best > giveUp {
				break
			}
		}
		return best
	}
	// A run of scans stops once over limit: it failed already.
	scan := func(s *Store, limit time.Duration) func(int) time.Duration {
		return func(int) time.Duration {
			start := time.Now()
			for range 20 {
				if time.Since(start) > limit {
					break
				}
				if n := fullScan(t, s); n != 0 {
					t.Fatalf("scan met %d sessions, want none", n)
				}
			}
			return time.Since(start)
		}
	}
	// The fresh figure is floored at a millisecond: a ratio of
	// microseconds would measure the machine's noise.
	// Under the race detector the churned scan's ratio alone reaches 7-11x
	// (1x without it) on a busy machine: the bound there is 50x, still far
	// below the 200x and 1000x of a regression.
	factor := time.Duration(10)
	if raceEnabled {
		factor = 50
	}
	bound := func(f time.Duration) time.Duration { return factor * max(f, time.Millisecond) }
	check := func(what string, f, c time.Duration) {
		t.Logf("%s: fresh %v, after churn %v (%.1fx)", what, f, c, float64(c)/float64(f))
		if c > bound(f) {
			t.Errorf("%s after churn took %v, over %dx the %v of a fresh store: scans depend on history again", what, c, factor, f)
		}
	}
	f := fastest(time.Hour, scan(fresh, time.Hour))
	check("20 full scans of an empty store", f, fastest(10*bound(f), scan(churned, bound(f))))
	// Each repair starts from a store holding nothing, as the first one
	// does: the sessions it brought are collected (untimed) before the
	// next, so that its reads of empty buckets are measured every time.
	repairs := func(s *Store, now time.Time) func(int) time.Duration {
		return func(i int) time.Duration {
			start := time.Now()
			repair(t, s, now, fmt.Sprint(i), 2000)
			took := time.Since(start)
			if n, err := s.CollectGarbage(now.Add(2*time.Hour), 1<<20); err != nil || n != 2000 {
				t.Fatalf("collected %d repaired sessions, %v", n, err)
			}
			return took
		}
	}
	f = fastest(time.Hour, repairs(fresh, freshNow))
	check("repair of 2000 sessions", f, fastest(10*bound(f), repairs(churned, churnedNow)))
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
