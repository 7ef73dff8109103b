//go:build linux || darwin

package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestChurnDiskLevelsOff runs a store on disk through many hours of session
// churn on a virtual clock, at a steady number of stored sessions, and checks
// that the space of collected sessions comes back: disk use levels off
// instead of growing with what was ever written.
//
// Only correctness depends on the virtual clock. Disk use also depends on
// Badger's background compactors, which the test lets run (see settle), as
// they would between two collection passes in production, where passes are
// GCInterval (30s) of wall-clock time apart.
func TestChurnDiskLevelsOff(t *testing.T) {
	if testing.Short() {
		t.Skip("long churn run")
	}
	began := time.Now()
	dir := t.TempDir()
	o := testOptions(dir)
	// The smallest memtable, so that memtables are flushed and L0 is
	// compacted many times within the run.
	o.MemTableSize = 1 << 20
	o.BlockCacheSize = 4 << 20
	s := openStore(t, o)

	// The workload: every round (step of virtual time) creates sessions of
	// nFields fields of valueSize random (incompressible) bytes, living an
	// hour (idle timeout 30 min), destroys some and updates (sets a field
	// and touches) others. Sessions nobody touches for 30 min expire, and
	// every session, tombstone or not, is collected an hour (+MaxDrift)
	// after its creation: ~creates × hour/step sessions are stored at any
	// time once the first hour has passed. Creates dominate what is written,
	// so that if collection stopped freeing space, disk use would grow like
	// the bytes written.
	const (
		rounds    = 600
		step      = 3 * time.Minute
		creates   = 120 // per round: ~2400 stored
		destroys  = 20  // per round
		updates   = 50  // per round
		nFields   = 10
		valueSize = 90
	)
	rng := rand.New(rand.NewPCG(1, 2))
	value := func() []byte {
		v := make([]byte, valueSize)
		for i := 0; i < len(v); i += 8 {
			x := rng.Uint64()
			for j := i; j < min(i+8, len(v)); j++ {
				v[j] = byte(x)
				x >>= 8
			}
		}
		return v
	}
	clk := crdt.NewClock(1, o.MaxDrift)
	// model is what the store must hold: every session not yet collectable,
	// as merged from the deltas sent.
	model := map[string]*crdt.Session{}
	// active holds the ids of sessions that may still be updated or
	// destroyed; pick drops those that expired meanwhile.
	var active, collected []string
	pick := func(now time.Time) (string, bool) {
		for len(active) > 0 {
			i := rng.IntN(len(active))
			id := active[i]
			active[i] = active[len(active)-1]
			active = active[:len(active)-1]
			if st := model[id]; st != nil && st.Visible(now) {
				return id, true
			}
		}
		return "", false
	}

	var written int64 // bytes of session state written: every Apply rewrites whole sessions
	var disk []diskUse
	next := 0
	for r := range rounds {
		now := t0.Add(time.Duration(r) * step)
		var deltas, fresh []*crdt.Session
		var again []string
		for range destroys {
			if id, ok := pick(now); ok {
				deltas = append(deltas, model[id].Destroy(clk.Now(now)))
			}
		}
		for range updates {
			if id, ok := pick(now); ok {
				d := model[id].Set(fmt.Sprintf("f%02d", rng.IntN(nFields)), value(), clk.Now(now))
				d.LastAccess = now.UnixMilli()
				deltas = append(deltas, d)
				again = append(again, id)
			}
		}
		for range creates {
			id := fmt.Sprintf("churn-%08d", next)
			next++
			sess := crdt.Create(id, clk.Now(now), now.Add(time.Hour), 30*time.Minute)
			for f := range nFields {
				_, _ = sess.Merge(sess.Set(fmt.Sprintf("f%02d", f), value(), clk.Now(now)))
			}
			model[id] = &crdt.Session{ID: id}
			fresh = append(fresh, sess)
			again = append(again, id)
		}
		active = append(active, again...)
		deltas = append(deltas, fresh...)
		for _, d := range deltas {
			if _, err := model[d.ID].Merge(d); err != nil {
				t.Fatal(err)
			}
			enc, err := crdt.MarshalSession(model[d.ID], o.Limits)
			if err != nil {
				t.Fatal(err)
			}
			written += int64(len(enc))
		}
		res := apply(t, s, now, deltas...)
		if len(res.Refused) != 0 || len(res.Deferred) != 0 {
			t.Fatalf("round %d: refused %v, deferred %d", r, res.Refused, len(res.Deferred))
		}

		due := 0
		for id, st := range model {
			if st.Collectable(now, o.MaxDrift) {
				due++
				delete(model, id)
				collected = append(collected, id)
			}
		}
		n, err := s.CollectGarbage(now, 1<<20)
		if err != nil {
			t.Fatalf("round %d: collect: %v", r, err)
		}
		if n != due {
			t.Fatalf("round %d: collected %d sessions, want %d", r, n, due)
		}
		s.reclaimDisk()
		settle(t, s)
		u := measureDisk(t, dir)
		disk = append(disk, u)
		if r%25 == 0 || r == rounds-1 {
			t.Logf("round %3d %6.1fs  stored %4d  written %6.1f MiB  disk %s",
				r, time.Since(began).Seconds(), len(model), mib(written), u)
		}
	}

	// What the store holds is exactly the model: every session created in
	// the last hour (the deadline is exclusive of MaxDrift, hence one round
	// more), each as written; collected ones are gone; and the digests are
	// those of a store given only the uncollected sessions.
	if want := creates * (int(time.Hour/step) + 1); len(model) != want {
		t.Fatalf("model holds %d sessions, want %d", len(model), want)
	}
	stored := 0
	for b := range Buckets {
		err := s.Bucket(t.Context(), b, func(got *crdt.Session) error {
			stored++
			want, ok := model[got.ID]
			switch {
			case !ok:
				return fmt.Errorf("store holds %s, which should have been collected", got.ID)
			case encoded(t, got) != encoded(t, want):
				return fmt.Errorf("store holds %s different from what was written", got.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if stored != len(model) {
		t.Fatalf("store holds %d sessions, want %d", stored, len(model))
	}
	ids := make([]string, 0, len(model))
	for id := range model {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for range 200 {
		id := ids[rng.IntN(len(ids))]
		if got, want := encoded(t, mustGet(t, s, id)), encoded(t, model[id]); got != want {
			t.Fatalf("session %s reads back different from what was written", id)
		}
		id = collected[rng.IntN(len(collected))]
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("collected session %s: got %v, want ErrNotFound", id, err)
		}
	}
	ref := openStore(t, testOptions(""))
	for _, id := range ids {
		st := model[id]
		// Admitted at the time of its latest write, before its deadline.
		res := apply(t, ref, time.UnixMilli(st.MaxMillis()), st)
		if len(res.Refused) != 0 || len(res.Deferred) != 0 {
			t.Fatalf("reference store refused %s: %+v", id, res)
		}
	}
	if *s.Digests() != *ref.Digests() {
		t.Fatal("digests differ from those of a store holding only the uncollected sessions")
	}

	// Disk use levels off. It is a sawtooth: memtables fill (.mem), are
	// flushed to L0 tables (.sst) and, every NumLevelZeroTables (5) flushes,
	// L0 is compacted into the bottom level, which drops deleted keys and
	// overwritten versions. .sst files dominate, then .mem; the .vlog stays
	// empty (sessions are far below Badger's value threshold, so values
	// live in the LSM tree and value-log GC has nothing to rewrite);
	// MANIFEST, DISCARD and KEYREGISTRY are a few KiB. Each third of the
	// run spans at least one whole period of the sawtooth, so its maximum
	// is a peak (memtable and L0 full) and its minimum a trough (just after
	// an L0 compaction: the live sessions and a nearly empty memtable).
	third := rounds / 3
	mid, last := disk[third:2*third], disk[2*third:]
	var live int64
	for _, st := range model {
		live += int64(len(encoded(t, st)))
	}
	t.Logf("written %.1f MiB, live %.2f MiB; disk in the middle third %.2f..%.2f MiB, last third %.2f..%.2f MiB, final %s; %.1fs",
		mib(written), mib(live), mib(minDisk(mid)), mib(maxDisk(mid)), mib(minDisk(last)), mib(maxDisk(last)),
		disk[len(disk)-1], time.Since(began).Seconds())
	// Neither the peaks nor the troughs grow. A peak differs from another
	// by up to an L0 table and a memtable, a trough by a few rounds of
	// writes: 1.5 covers both with room. The peaks alone cannot show
	// linear growth (growth from zero makes the ratio of the last third to
	// the middle one at most 1.5); the troughs, close to the live data, do.
	for _, c := range []struct {
		what      string
		mid, last int64
	}{
		{"peak", maxDisk(mid), maxDisk(last)},
		{"trough", minDisk(mid), minDisk(last)},
	} {
		if float64(c.last) > 1.5*float64(c.mid) {
			t.Errorf("disk use keeps growing: %s of %.2f MiB over the last third of the run, %.2f MiB over the middle third",
				c.what, mib(c.last), mib(c.mid))
		}
	}
	// The space of collected sessions came back: once compacted, the store
	// is a small fraction of what was written. Had collected sessions
	// stayed on disk, the bottom level would hold every session created,
	// about 2/3 of what was written.
	if settled := minDisk(last); written < 10*settled {
		t.Errorf("%.1f MiB written and still %.2f MiB on disk after compaction: collected space was not reclaimed",
			mib(written), mib(settled))
	}
}

// settle waits, in wall-clock time, for Badger's compactors to run the
// compactions that are due, so that what is measured does not depend on how
// fast this machine is relative to the loop.
func settle(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		due := false
		for _, l := range badgerDB(t, s).Levels() {
			due = due || l.Score >= 1
		}
		if !due {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("compactions still due after 30s:\n%s", badgerDB(t, s).LevelsToString())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// diskUse is what a store directory really occupies: the blocks allocated to
// its files, in total and by kind. Apparent sizes would count Badger's
// preallocation, sparse on disk: 2×ValueLogFileSize for the .vlog,
// 2×MemTableSize for each .mem.
type diskUse struct {
	total int64
	kinds map[string]int64
	files map[string]int
}

func measureDisk(t testing.TB, dir string) diskUse {
	t.Helper()
	u := diskUse{kinds: map[string]int64{}, files: map[string]int{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) { // removed by a compaction meanwhile
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n = int64(st.Blocks) * 512
		}
		kind := filepath.Ext(path)
		if kind == "" {
			kind = filepath.Base(path)
		}
		u.total += n
		u.kinds[kind] += n
		u.files[kind]++
		return nil
	})
	if err != nil {
		t.Fatalf("measure %s: %v", dir, err)
	}
	return u
}

func (u diskUse) String() string {
	kinds := make([]string, 0, len(u.kinds))
	for k := range u.kinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return int(u.kinds[b] - u.kinds[a]) })
	var b strings.Builder
	fmt.Fprintf(&b, "%6.2f MiB:", mib(u.total))
	for _, k := range kinds[:min(3, len(kinds))] {
		fmt.Fprintf(&b, " %s %.2f (%d)", k, mib(u.kinds[k]), u.files[k])
	}
	return b.String()
}

func maxDisk(us []diskUse) int64 {
	var m int64
	for _, u := range us {
		m = max(m, u.total)
	}
	return m
}

func minDisk(us []diskUse) int64 {
	m := us[0].total
	for _, u := range us {
		m = min(m, u.total)
	}
	return m
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
