package persist

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// testdata/format3.backup was written by the build before version riders
// (commit d2a8d6a, persist format 3): 30 sessions s00..s29 created by node
// 7 at format3Now with field k = index and a version entry, then a
// change-only write by node 7 of field c = x<index> with its entry (each
// its own field record), and on even sessions a write by node 9 of k =
// n9-<index> with node 9's entry.
var format3Now = time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)

// The previous build's store restores and reads as it wrote it, with the
// same digest root; its marker is upgraded; writes since carry the version
// entries in their field records and write none of their own, and a
// reopened store reads the latest entries from them.
func TestFormat3StoreUpgrades(t *testing.T) {
	s, o := restoreBackup(t, "format3.backup")
	if r := s.Digests().Root; r != 3875973602611266918 {
		t.Fatalf("digest root %d, the previous build had 3875973602611266918", r)
	}
	marker(t, s, string(formatMarker))
	for i := range 30 {
		got := mustGet(t, s, fmt.Sprintf("s%02d", i))
		k, _ := got.Get("k")
		c, _ := got.Get("c")
		wantK, entries := fmt.Sprint(i), 1
		if i%2 == 0 {
			wantK, entries = fmt.Sprintf("n9-%d", i), 2
		}
		if k != wantK || c != fmt.Sprintf("x%d", i) || len(got.Version()) != entries {
			t.Fatalf("s%02d read as k=%q c=%q with %d version entries", i, k, c, len(got.Version()))
		}
	}

	// Node 7 writes c again on s01 and a new field d on s02; node 9
	// writes k on s03 (its first entry there).
	c7, c9 := crdt.NewClock(7, 5*time.Second), crdt.NewClock(9, 5*time.Second)
	at := format3Now.Add(time.Minute)
	before := fieldRecordKeys(t, s)
	var written []*crdt.Session
	for _, w := range []struct {
		id, key string
		c       *crdt.Clock
	}{{"s01", "c", c7}, {"s02", "d", c7}, {"s03", "k", c9}} {
		cur := mustGet(t, s, w.id)
		ts := w.c.Now(at)
		d := cur.Header()
		vk, vf := crdt.VersionField(ts)
		d.Fields = d.Fields.With(w.key, crdt.Field{Value: "new", TS: ts}).With(vk, vf)
		apply(t, s, at, d)
		_, _ = cur.Merge(d)
		written = append(written, cur)
	}
	// Two new records: d's on s02 and k's on s03 (whose k the header
	// record held); c's on s01 is rewritten in place, and no entry has a
	// record of its own written: after the reopen below, the entries
	// node 7 and node 9 stamped now are read from the riders only (node
	// 7's record on s01 holds its older stamp).
	var added []string
	for k := range fieldRecordKeys(t, s) {
		if !before[k] {
			added = append(added, k)
		}
	}
	slices.Sort(added)
	want := []string{string(fieldKey("s02", "d")), string(fieldKey("s03", "k"))}
	if slices.Sort(want); !slices.Equal(added, want) {
		t.Fatalf("new field records %q, want %q", added, want)
	}
	root := s.Digests().Root
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	if r := s.Digests().Root; r != root {
		t.Fatalf("digest root %x after reopen, was %x", r, root)
	}
	for _, w := range written {
		if got := mustGet(t, s, w.ID); encoded(t, got) != encoded(t, w) {
			t.Fatalf("%s after reopen: version %v, want %v", w.ID, got.Version(), w.Version())
		}
	}
}

func marker(t *testing.T, s *Store, want string) {
	t.Helper()
	err := badgerDB(t, s).View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) != want {
				t.Errorf("format marker %q, want %q", v, want)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fieldRecordKeys returns the keys of the store's field records.
func fieldRecordKeys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	err := badgerDB(t, s).View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixSession}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_, kind, _, err := parseSessionKey(it.Item().Key())
			if err != nil {
				return err
			}
			if kind == kindField {
				keys[string(it.Item().KeyCopy(nil))] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestVersionRidersAgree drives a store on disk and one in memory with the
// same random history of version-stamped writes from three nodes
// (change-only deltas of fields and their entries, entries merged alone,
// unversioned writes, removals, touches that rewrite the header, destroys
// and late redeliveries) and checks that every session read back from the
// records (cache dropped, and after reopens) is the one the in-memory
// store holds: no entry lost when a record carrying it is rewritten, no
// stale one winning.
func TestVersionRidersAgree(t *testing.T) {
	mem := openStore(t, testOptions(""))
	do := testOptions(t.TempDir())
	do.Durability = DurabilityNone
	disk := openStore(t, do)
	rng := rand.New(rand.NewPCG(3, 4))
	clocks := []*crdt.Clock{crdt.NewClock(1, 5*time.Second), crdt.NewClock(2, 5*time.Second), crdt.NewClock(3, 5*time.Second)}
	now := t0
	ids := []string{}
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("v%02d", i))
	}
	var history []*crdt.Session
	stamp := func(d *crdt.Session, ts crdt.Timestamp) {
		vk, vf := crdt.VersionField(ts)
		d.Fields = d.Fields.With(vk, vf)
	}
	created := map[string]bool{}
	rides, alone := 0, 0
	for step := range 500 {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		c := clocks[rng.IntN(len(clocks))]
		id := ids[rng.IntN(len(ids))]
		ts := c.Now(now)
		var d *crdt.Session
		cur, err := mem.Get(id)
		switch r := rng.IntN(20); {
		case errors.Is(err, ErrNotFound) && !created[id] || r == 0:
			d = crdt.Create(id, ts, now.Add(24*time.Hour), time.Hour)
			stamp(d, ts)
			created[id] = true
		case err != nil:
			continue // destroyed
		case r < 10:
			// A change-only versioned write of one or two fields.
			d = cur.Header()
			for range 1 + rng.IntN(2) {
				d.Fields = d.Fields.With(fmt.Sprintf("f%d", rng.IntN(4)), crdt.Field{Value: fmt.Sprint(step), TS: ts})
			}
			stamp(d, ts)
			rides++
		case r < 13:
			// Entries merged alone (a peer's version, no field moved).
			d = cur.Header()
			stamp(d, ts)
			if rng.IntN(2) == 0 {
				vk, vf := crdt.VersionField(clocks[rng.IntN(3)].Now(now))
				d.Fields = d.Fields.With(vk, vf)
			}
			alone++
		case r < 15:
			d = cur.Set(fmt.Sprintf("f%d", rng.IntN(4)), fmt.Appendf(nil, "u%d", step), ts) // unversioned
		case r < 16:
			d = cur.Remove(fmt.Sprintf("f%d", rng.IntN(4)), ts)
			stamp(d, ts)
		case r < 17:
			d = cur.Touch(now)
		case r < 18 && rng.IntN(4) == 0:
			d = cur.Destroy(ts)
		default:
			if len(history) == 0 {
				continue
			}
			d = history[rng.IntN(len(history))]
		}
		history = append(history, d)
		b := crdt.NewBatch(d)
		rm, err1 := mem.Apply(b, now)
		rd, err2 := disk.Apply(b, now)
		if err1 != nil || err2 != nil {
			t.Fatalf("step %d: apply: %v / %v", step, err1, err2)
		}
		if fmt.Sprint(summary(rm)) != fmt.Sprint(summary(rd)) {
			t.Fatalf("step %d: results differ:\nmemory %v\ndisk   %v", step, summary(rm), summary(rd))
		}
		if rng.IntN(5) == 0 {
			for _, id := range ids {
				disk.cache.remove(id) // read the records
			}
		}
		if step%100 == 99 {
			if err := disk.Close(); err != nil {
				t.Fatal(err)
			}
			disk = openStore(t, do)
		}
		for _, id := range ids {
			a, err1 := mem.Get(id)
			b, err2 := disk.Get(id)
			if (err1 == nil) != (err2 == nil) || err1 == nil && encoded(t, a) != encoded(t, b) {
				t.Fatalf("step %d: %s: memory %v (%v), disk %v (%v)", step, id, a, err1, b, err2)
			}
		}
		if *mem.Digests() != *disk.Digests() {
			t.Fatalf("step %d: digests differ", step)
		}
	}
	if rides < 100 || alone < 30 {
		t.Fatalf("%d versioned field writes, %d entries alone: the history proves little", rides, alone)
	}
}

// A field record whose riders are cut short or are not version entries is
// corrupt, not silently read.
func TestFieldRecordRidersStrict(t *testing.T) {
	s := openStore(t, testOptions(t.TempDir()))
	x := newSession("x", 1, t0, 1)
	apply(t, s, t0, x)
	ts := crdt.NewClock(2, 5*time.Second).Now(t0.Add(time.Second))
	stamped := x.Clone()
	vk, vf := crdt.VersionField(ts)
	stamped.Fields = stamped.Fields.With(vk, vf)
	good := appendFieldRiders(nil, crdt.Field{Value: "v", TS: ts}, stamped)
	put := func(raw []byte) {
		err := badgerDB(t, s).Update(func(txn *badger.Txn) error { return txn.Set(fieldKey("x", "f"), raw) })
		if err != nil {
			t.Fatal(err)
		}
		s.cache.remove("x")
	}
	for n := range len(good) {
		put(good[:n])
		if _, err := s.Get("x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("record cut to %d of %d bytes: %v, want ErrCorrupt", n, len(good), err)
		}
	}
	put(append(append([]byte(nil), good...), 0))
	if _, err := s.Get("x"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte after the riders: %v, want ErrCorrupt", err)
	}
	bad := appendFieldRiders(nil, crdt.Field{Value: "v", TS: ts}, stamped)
	bad = bytes.Replace(bad, []byte(vk), []byte(strings.Repeat("z", len(vk))), 1)
	put(bad)
	if _, err := s.Get("x"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a rider that is no version entry: %v, want ErrCorrupt", err)
	}
	put(good)
	got := mustGet(t, s, "x")
	if v, _ := got.Get("f"); v != "v" {
		t.Fatalf("read back f=%q", v)
	}
	if e, ok := got.Fields.Get(vk); !ok || e != vf {
		t.Fatalf("the rider read back as %v (%v), want %v", e, ok, vf)
	}
}
