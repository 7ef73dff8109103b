//go:build linux

package persist

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// tableRSS sums the resident bytes of this process's mappings of the
// tables (*.sst) in dir, from /proc/self/smaps.
func tableRSS(t *testing.T, dir string) int64 {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// A mapping's header line; anonymous ones have no path.
			_, _, path, ok := parseMapsLine([]byte(line))
			inTable = ok && filepath.Dir(path) == real && strings.HasSuffix(path, ".sst")
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && inTable {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// Releasing the table pages empties the process's resident mappings of
// the tables, and every session reads back the same afterwards.
func TestReleaseTablePages(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.TableReleaseInterval = 0 // released by hand below
	s := openStore(t, o)
	now := time.Now()
	const n = 6000
	want := make(map[string]string, n)
	for i := 0; i < n; i += 200 {
		var batch []*crdt.Session
		for j := i; j < i+200; j++ {
			x := newSession(fmt.Sprintf("s%05d", j), 1, now, 10)
			want[x.ID] = encoded(t, x)
			batch = append(batch, x)
		}
		apply(t, s, now, batch...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening scans every session to rebuild the digests, which maps
	// every page of the tables Close flushed.
	s = openStore(t, o)
	before := tableRSS(t, dir)
	if before < 256<<10 {
		t.Fatalf("only %d bytes of tables resident after the reopening scan; the test shows nothing", before)
	}
	went, err := s.be.releasePages()
	if err != nil {
		t.Fatal(err)
	}
	after := tableRSS(t, dir)
	t.Logf("table pages resident: %d bytes before, %d after releasing %d tables", before, after, went)
	if went == 0 || after > before/10 {
		t.Fatalf("table pages resident: %d bytes before, %d after releasing %d of %d tables", before, after, went, len(badgerDB(t, s).Tables()))
	}
	for id, w := range want {
		s.cache.remove(id) // read from the tables
		if got := encoded(t, mustGet(t, s, id)); got != w {
			t.Fatalf("session %s changed after releasing table pages", id)
		}
	}
}

// BenchmarkReleaseTablePages: one release pass over a store of 100k small
// sessions, what TableReleaseInterval costs each period.
func BenchmarkReleaseTablePages(b *testing.B) {
	o := testOptions(b.TempDir())
	o.TableReleaseInterval = 0
	o.MemTableSize = 1 << 20
	o.Limits.MaxSessionBytes = 64 << 10 // lets the memtable be 1 MiB: many tables
	s := openStore(b, o)
	now := time.Now()
	for i := 0; i < 100_000; i += 500 {
		var batch []*crdt.Session
		for j := i; j < i+500; j++ {
			batch = append(batch, newSession(fmt.Sprintf("s%06d", j), 1, now, 10))
		}
		if _, err := s.Apply(crdt.NewBatch(batch...), now); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d tables", len(badgerDB(b, s).Tables()))
	for b.Loop() {
		if _, err := s.releasePages(); err != nil {
			b.Fatal(err)
		}
	}
}

// Releasing table pages as often as possible while flushes and compactions
// create and delete tables, and readers read through them, loses and
// changes nothing.
func TestReleaseUnderChurn(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.TableReleaseInterval = time.Millisecond
	o.MemTableSize = 1 << 20
	o.Limits.MaxSessionBytes = 64 << 10 // lets the memtable be 1 MiB: many tables
	o.CacheSessions = 0                 // every read goes to the tables
	s := openStore(t, o)
	now := time.Now()
	const n = 12000
	want := make([]string, n)
	written := make(chan int, n/200)
	done := make(chan error, 1)
	go func() {
		// A reader checks sessions already written, over and over.
		var err error
		defer func() { done <- err }()
		upto := 0
		for i := 0; ; i++ {
			select {
			case u, ok := <-written:
				if !ok {
					return
				}
				upto = u
			default:
			}
			if upto == 0 {
				continue
			}
			j := (i * 7919) % upto
			got, gerr := s.Get(fmt.Sprintf("s%05d", j))
			if gerr != nil {
				err = fmt.Errorf("get s%05d: %w", j, gerr)
				return
			}
			if len(got.Keys()) != 10 {
				err = fmt.Errorf("s%05d has keys %v", j, got.Keys())
				return
			}
		}
	}()
	for i := 0; i < n; i += 200 {
		var batch []*crdt.Session
		for j := i; j < i+200; j++ {
			x := newSession(fmt.Sprintf("s%05d", j), 1, now, 10)
			want[j] = encoded(t, x)
			batch = append(batch, x)
		}
		apply(t, s, now, batch...)
		written <- i + 200
	}
	close(written)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(badgerDB(t, s).Tables()); got < 4 {
		t.Fatalf("%d tables: the test churned nothing", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	for j, w := range want {
		if got := encoded(t, mustGet(t, s, fmt.Sprintf("s%05d", j))); got != w {
			t.Fatalf("session s%05d changed", j)
		}
	}
}
