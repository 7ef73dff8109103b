//go:build linux || darwin

package persist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// vlogFiles returns the apparent sizes of the value-log files under dir.
func vlogFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// TestValueLogSized: a new store's value-log file is sized for sessions
// (twice ValueLogFileSize, preallocated), not Badger's 2 GiB.
func TestValueLogSized(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	apply(t, s, t0, newSession("a", 1, t0, 3))
	files := vlogFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no value-log file")
	}
	for name, size := range files {
		if want := 2 * DefaultOptions("").ValueLogFileSize; size > want {
			t.Errorf("%s: %d bytes, want at most %d", name, size, want)
		}
	}
}

// bigSession is a session of one field of n bytes.
func bigSession(id string, at time.Time, n int) *crdt.Session {
	c := crdt.NewClock(1, 5*time.Second)
	s := crdt.Create(id, c.Now(at), at.Add(time.Hour), 30*time.Minute)
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*7 + len(id))
	}
	_, _ = s.Merge(s.Set("blob", v, c.Now(at)))
	return s
}

// TestLargeSessionsStayInTheTree: even with a memtable whose 15% (Badger's
// value threshold) is below the largest session, session records stay in
// the LSM tree, out of the value log: Badger's value-log GC, which small
// value-log files make effective, revived collected sessions whose records
// it had rewritten. Through churn, compaction and value-log GC, the value
// log stays one empty file and no collected session comes back.
func TestLargeSessionsStayInTheTree(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.Durability = DurabilityNone
	o.MemTableSize = 1 << 20 // a value threshold of 157 KiB, were it not raised
	o.Limits.MaxSessionBytes, o.Limits.MaxValueBytes = 256<<10, 256<<10
	o.ValueLogFileSize = 1 << 20
	s := openStore(t, o)
	for i := range 120 {
		if res := apply(t, s, t0, bigSession(fmt.Sprintf("big-%03d", i), t0, 200<<10)); len(res.Changes) != 1 {
			t.Fatalf("large session not stored: %+v", res)
		}
	}
	if files := vlogFiles(t, dir); len(files) != 1 {
		t.Fatalf("value-log files %v after 24 MiB of large sessions: their records reached the value log", files)
	}
	later := t0.Add(2 * time.Hour)
	if n, err := s.CollectGarbage(later, 1<<20); err != nil || n != 120 {
		t.Fatalf("collected %d, %v", n, err)
	}
	// Enough writes for Badger to flush and compact the collected records
	// with their delete markers, then value-log GC as after every pass.
	for i := range 100 {
		var ds []*crdt.Session
		for j := range 10 {
			ds = append(ds, bigSession(fmt.Sprintf("small-%03d-%d", i, j), later, 8<<10))
		}
		apply(t, s, later, ds...)
	}
	settle(t, s)
	for range 5 {
		s.reclaimDisk()
	}
	if files := vlogFiles(t, dir); len(files) != 1 {
		t.Errorf("value-log files %v: session records reached the value log", files)
	}
	if _, vlog := badgerDB(t, s).Size(); vlog > 1<<20 {
		t.Errorf("value log holds %d bytes: session records reached it", vlog)
	}
	var ids []string
	if err := s.Buckets(t.Context(), allBuckets, func(x *crdt.Session) error { ids = append(ids, x.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "small-") {
			t.Errorf("collected session %s is back", id)
		}
	}
	if len(ids) != 1000 {
		t.Fatalf("%d sessions stored, want the 1000 small ones", len(ids))
	}
}

// TestOpensStoreWithLargeValueLog: a data directory written with Badger's
// 1 GiB value-log files (before ValueLogFileSize) opens with the new size,
// keeps every session, large ones in the value log included, and takes
// writes.
func TestOpensStoreWithLargeValueLog(t *testing.T) {
	dir := t.TempDir()
	old := testOptions(dir)
	old.MemTableSize = 1 << 20
	old.Limits.MaxSessionBytes, old.Limits.MaxValueBytes = 256<<10, 256<<10
	old.ValueLogFileSize = 1<<30 - 1 // Badger's default, used until then
	s, err := Open(old)
	if err != nil {
		t.Fatal(err)
	}
	var want []*crdt.Session
	for i := range 10 {
		want = append(want, bigSession(fmt.Sprintf("big-%d", i), t0, 200<<10), newSession(fmt.Sprintf("small-%d", i), 1, t0, 5))
	}
	if res := apply(t, s, t0, want...); len(res.Changes) != len(want) {
		t.Fatalf("stored %d of %d sessions: %+v", len(res.Changes), len(want), res.Refused)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := old
	o.ValueLogFileSize = DefaultOptions("").ValueLogFileSize
	for round := range 2 {
		s, err := Open(o)
		if err != nil {
			t.Fatalf("open with the new value-log size (round %d): %v", round, err)
		}
		for _, w := range want {
			if got := mustGet(t, s, w.ID); encodedWith(t, got, o.Limits) != encodedWith(t, w, o.Limits) {
				t.Fatalf("round %d: %s reads back different", round, w.ID)
			}
		}
		d := bigSession(fmt.Sprintf("new-%d", round), t0, 200<<10)
		apply(t, s, t0, d)
		want = append(want, d)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
}

func encodedWith(t *testing.T, s *crdt.Session, l crdt.Limits) string {
	t.Helper()
	b, err := crdt.MarshalSession(s, l)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
