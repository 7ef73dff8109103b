package persist

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

var t0 = time.UnixMilli(1_700_000_000_000)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions(dir string) Options {
	o := DefaultOptions(dir)
	if dir == "" {
		o = InMemoryOptions()
	}
	o.Logger = quietLogger()
	o.GCInterval = 0
	return o
}

func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newSession returns the create delta of a session with n fields, stamped by
// node, living for an hour from at.
func newSession(id string, node crdt.NodeID, at time.Time, n int) *crdt.Session {
	c := crdt.NewClock(node, 5*time.Second)
	s := crdt.Create(id, c.Now(at), at.Add(time.Hour), 30*time.Minute)
	for i := range n {
		_, _ = s.Merge(s.Set(fmt.Sprintf("f%02d", i), []byte(fmt.Sprintf("value-%d-%s", i, id)), c.Now(at)))
	}
	return s
}

func apply(t testing.TB, s *Store, now time.Time, deltas ...*crdt.Session) Result {
	t.Helper()
	res, err := s.Apply(crdt.NewBatch(deltas...), now)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func mustGet(t testing.TB, s *Store, id string) *crdt.Session {
	t.Helper()
	got, err := s.Get(id)
	if err != nil {
		t.Fatalf("get %q: %v", id, err)
	}
	return got
}

func encoded(t testing.TB, s *crdt.Session) string {
	t.Helper()
	b, err := crdt.MarshalSession(s, crdt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// badgerDB returns the Badger database under an on-disk store.
func badgerDB(t testing.TB, s *Store) *badger.DB {
	t.Helper()
	b, ok := s.be.(*badgerBackend)
	if !ok {
		t.Fatalf("store backend is %T, not Badger", s.be)
	}
	return b.db
}

// putRaw writes the header record of session id behind the store's back,
// as a bug or a disk fault would, and drops the cached state so that the
// next access reads it. The store must be on disk.
func putRaw(t testing.TB, s *Store, id string, raw []byte) {
	t.Helper()
	err := badgerDB(t, s).Update(func(txn *badger.Txn) error { return txn.Set(headerKey(id), raw) })
	if err != nil {
		t.Fatal(err)
	}
	s.cache.remove(id)
}

// restoreBackup restores testdata/name (a backup a previous build wrote)
// into a new directory and opens it; o reopens it.
func restoreBackup(t testing.TB, name string) (s *Store, o Options) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o = testOptions(filepath.Join(t.TempDir(), "restored"))
	if _, err := Restore(f, o); err != nil {
		t.Fatalf("restoring the previous build's backup %s: %v", name, err)
	}
	return openStore(t, o), o
}
