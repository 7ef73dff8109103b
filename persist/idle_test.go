package persist

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A store written before the idle timeout had a stamp (format
// sessionmesh/persist/2) opens, is marked as the current format, and reads
// its sessions unstamped; a lowered idle timeout written since survives a
// reopen. A store of an unknown later format is refused.
func TestIdleStampAndFormat2Upgrade(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	legacy := newSession("legacy", 1, t0, 2)
	legacy.IdleTS = crdt.Timestamp{} // as a format-2 store holds it
	stamped := newSession("stamped", 1, t0, 2)
	apply(t, s, t0, legacy, stamped)
	c := crdt.NewClock(2, 5*time.Second)
	apply(t, s, t0, stamped.SetIdle(10*time.Second, c.Now(t0.Add(time.Second))))
	err = badgerDB(t, s).Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(formatV2)) })
	if err != nil {
		t.Fatal(err)
	}
	root := s.Digests().Root
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, testOptions(dir))
	if got := mustGet(t, s, "legacy"); !got.IdleTS.IsZero() || got.Idle != legacy.Idle {
		t.Fatalf("legacy session read as idle %d stamped %v", got.Idle, got.IdleTS)
	}
	got := mustGet(t, s, "stamped")
	if got.Idle != 10_000 || got.IdleTS.IsZero() {
		t.Fatalf("lowered idle timeout read back as %d ms stamped %v", got.Idle, got.IdleTS)
	}
	if !got.ExpiresAt().Equal(time.UnixMilli(got.LastAccess).Add(10 * time.Second)) {
		t.Fatalf("expires at %v", got.ExpiresAt())
	}
	if r := s.Digests().Root; r != root {
		t.Fatalf("digest root %x after reopen, was %x", r, root)
	}
	err = badgerDB(t, s).View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) != string(formatMarker) {
				t.Errorf("format marker %q after opening a format-2 store, want %q", v, formatMarker)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = badgerDB(t, s).Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte("sessionmesh/persist/5")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(testOptions(dir)); !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), "persist/5") {
		t.Fatalf("store of a later format: %v, want ErrForeign naming it", err)
	}
}

// A header record whose bytes after the fields are not a non-zero stamp is
// corrupt, not silently read.
func TestHeaderRecordIdleStampStrict(t *testing.T) {
	s := openStore(t, testOptions(t.TempDir()))
	x := newSession("x", 1, t0, 1)
	good := encodeHeaderRecord(x)
	for name, raw := range map[string][]byte{
		"zero stamp":  append(encodeHeaderRecord(&crdt.Session{ID: "x", Created: x.Created, Absolute: x.Absolute, Idle: x.Idle, LastAccess: x.LastAccess, Fields: x.Fields}), 0, 0),
		"extra byte":  append(append([]byte(nil), good...), 7),
		"half stamp":  good[:len(good)-1],
		"three bytes": append(append([]byte(nil), good...), 1, 1),
	} {
		putRaw(t, s, "x", raw)
		if _, err := s.Get("x"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	putRaw(t, s, "x", good)
	if got := mustGet(t, s, "x"); got.IdleTS != x.IdleTS {
		t.Fatalf("idle stamp read as %v, want %v", got.IdleTS, x.IdleTS)
	}
}

// A backup taken by the previous build (header and marker
// sessionmesh/persist/2) restores into this one.
func TestRestoreFormat2Backup(t *testing.T) {
	src := openStore(t, testOptions(t.TempDir()))
	ids := fillStore(t, src, 20)
	err := badgerDB(t, src).Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(formatV2)) })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	// What the previous build wrote in the header line.
	file := bytes.Replace(buf.Bytes(), formatMarker, []byte(formatV2), 1)
	if bytes.Equal(file, buf.Bytes()) {
		t.Fatal("the backup header does not name the format (checking the test's premise)")
	}
	ro := testOptions(filepath.Join(t.TempDir(), "restored"))
	if _, err := Restore(bytes.NewReader(file), ro); err != nil {
		t.Fatalf("restoring a format-2 backup: %v", err)
	}
	sameSessions(t, src, openStore(t, ro), ids)
}
