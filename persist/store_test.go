package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

func TestApplyAndGet(t *testing.T) {
	s := openStore(t, testOptions(""))
	create := newSession("s1", 1, t0, 2)
	res := apply(t, s, t0, create)
	if len(res.Changes) != 1 || !res.Changes[0].Created {
		t.Fatalf("changes = %+v", res.Changes)
	}
	got := mustGet(t, s, "s1")
	if v, ok := got.Get("f01"); !ok || string(v) != "value-1-s1" {
		t.Fatalf("f01 = %q %v", v, ok)
	}
	if res := apply(t, s, t0, create); len(res.Changes) != 0 {
		t.Fatalf("re-applying a delta reported %+v", res.Changes)
	}
	d := got.Set("f01", []byte("new"), crdt.NewTimestamp(t0.UnixMilli()+10, 0, 2))
	res = apply(t, s, t0, d)
	if len(res.Changes) != 1 || len(res.Changes[0].Fields) != 1 || res.Changes[0].Fields[0] != "f01" {
		t.Fatalf("changes = %+v", res.Changes)
	}
	if v, _ := mustGet(t, s, "s1").Get("f01"); string(v) != "new" {
		t.Fatalf("read after write = %q", v)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
}

func TestApplyDefersAndRefuses(t *testing.T) {
	o := testOptions("")
	o.MaxDrift = time.Second
	s := openStore(t, o)
	base := newSession("s1", 1, t0, 0)
	apply(t, s, t0, base)

	future := base.Set("k", []byte("v"), crdt.NewTimestamp(t0.Add(time.Minute).UnixMilli(), 0, 9))
	expired := newSession("old", 1, t0.Add(-2*time.Hour), 1)
	invalid := &crdt.Session{ID: "bad", Absolute: t0.Add(time.Hour).UnixMilli()} // live without a create stamp
	res := apply(t, s, t0, future, expired, invalid)
	if len(res.Changes) != 0 {
		t.Fatalf("nothing should merge, got %+v", res.Changes)
	}
	if len(res.Deferred) != 1 || res.Deferred[0].ID != "s1" {
		t.Fatalf("deferred = %+v", res.Deferred)
	}
	if len(res.Refused) != 2 {
		t.Fatalf("refused = %+v", res.Refused)
	}
	for _, r := range res.Refused {
		want := map[string]error{"old": crdt.ErrExpired, "bad": crdt.ErrInvalid}[r.ID]
		if !errors.Is(r.Err, want) {
			t.Errorf("refusal of %s: %v, want %v", r.ID, r.Err, want)
		}
	}
	if _, ok := mustGet(t, s, "s1").Get("k"); ok {
		t.Fatal("a deferred delta was merged")
	}
	// Deferred, not lost: offered again once local time has caught up.
	res = apply(t, s, t0.Add(time.Minute), res.Deferred...)
	if len(res.Changes) != 1 {
		t.Fatalf("deferred delta did not merge later: %+v", res)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, t0, newSession("a", 1, t0, 3), newSession("b", 1, t0, 1))
	before := s.Digests()
	if du, err := s.DiskUsage(); err != nil || du <= 0 {
		t.Fatalf("disk usage %d, %v", du, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Get("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	s2 := openStore(t, testOptions(dir))
	if got := mustGet(t, s2, "a"); len(got.Keys()) != 3 {
		t.Fatalf("reopened session keys = %v", got.Keys())
	}
	if after := s2.Digests(); *after != *before {
		t.Fatal("digests rebuilt at open differ from the ones maintained before")
	}
}

func TestEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	key := []byte("0123456789abcdef0123456789abcdef")
	o := testOptions(dir)
	o.EncryptionKey = key
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	secret := "super-secret-session-value"
	sess := newSession("enc", 1, t0, 0)
	apply(t, s, t0, sess.Set("token", []byte(secret), crdt.NewTimestamp(t0.UnixMilli()+1, 0, 1)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The plaintext must not appear in any file.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if containsBytes(b, []byte(secret)) {
			t.Fatalf("plaintext found in %s", filepath.Base(f))
		}
	}
	o.EncryptionKey = []byte("fedcba9876543210fedcba9876543210")
	if _, err := Open(o); !errors.Is(err, ErrBadKey) {
		t.Fatalf("open with the wrong key: %v, want ErrBadKey", err)
	}
	o.EncryptionKey = []byte("short")
	if _, err := Open(o); !errors.Is(err, ErrBadKey) {
		t.Fatalf("open with a malformed key: %v, want ErrBadKey", err)
	}
	o.EncryptionKey = key
	s = openStore(t, o)
	if v, _ := mustGet(t, s, "enc").Get("token"); string(v) != secret {
		t.Fatalf("decrypted value = %q", v)
	}
}

func containsBytes(hay, needle []byte) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		if string(hay[i:i+len(needle)]) == string(needle) {
			return true
		}
	}
	return false
}

func TestOpenRefusesForeignAndCorruptData(t *testing.T) {
	t.Run("other files", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(testOptions(dir)); !errors.Is(err, ErrForeign) {
			t.Fatalf("got %v, want ErrForeign", err)
		}
	})
	t.Run("another application's badger", func(t *testing.T) {
		dir := t.TempDir()
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) })
		_ = db.Close()
		if _, err := Open(testOptions(dir)); !errors.Is(err, ErrForeign) {
			t.Fatalf("got %v, want ErrForeign", err)
		}
	})
	t.Run("corrupt manifest", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(testOptions(dir))
		if err != nil {
			t.Fatal(err)
		}
		apply(t, s, t0, newSession("a", 1, t0, 1))
		_ = s.Close()
		if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage garbage garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(testOptions(dir)); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrForeign) {
			t.Fatalf("got %v, want ErrCorrupt or ErrForeign", err)
		}
	})
	t.Run("corrupt record", func(t *testing.T) {
		s := openStore(t, testOptions(t.TempDir()))
		putRaw(t, s, "x", []byte{1, 's', 0xc1})
		if _, err := s.Get("x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("older layout", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, testOptions(dir))
		err := badgerDB(t, s).Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte("sessionmesh/persist/1")) })
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = Open(testOptions(dir))
		if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), "older sessionmesh") {
			t.Fatalf("got %v, want ErrForeign naming the older layout", err)
		}
	})
	t.Run("in use", func(t *testing.T) {
		dir := t.TempDir()
		openStore(t, testOptions(dir))
		if _, err := Open(testOptions(dir)); !errors.Is(err, ErrLocked) {
			t.Fatalf("got %v, want ErrLocked", err)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions("")
	if err := o.Validate(); err == nil {
		t.Fatal("empty Dir without InMemory accepted")
	}
	o = InMemoryOptions()
	o.Durability = DurabilityGroup
	o.GroupWindow = 0
	if err := o.Validate(); err == nil {
		t.Fatal("group durability without a window accepted")
	}
	o = InMemoryOptions()
	o.Durability = DurabilityGroup
	o.Serial = true
	if err := o.Validate(); err == nil {
		t.Fatal("group durability with Serial accepted")
	}
	o = InMemoryOptions()
	o.Durability = DurabilityNone
	o.SyncInterval = 0
	if err := o.Validate(); err == nil {
		t.Fatal("durability none without a sync interval accepted")
	}
	for _, name := range []string{"sync", "group", "none"} {
		d, err := ParseDurability(name)
		if err != nil || d.String() != name {
			t.Fatalf("ParseDurability(%q) = %v, %v", name, d, err)
		}
	}
	if _, err := ParseDurability("fast"); err == nil {
		t.Fatal("unknown durability parsed")
	}
	for _, name := range []string{"none", "snappy", "zstd"} {
		c, err := ParseCompression(name)
		if err != nil || c.String() != name {
			t.Fatalf("ParseCompression(%q) = %v, %v", name, c, err)
		}
	}
	if _, err := ParseCompression("lz4"); err == nil {
		t.Fatal("unknown compression parsed")
	}
	for name, bad := range map[string]func(*Options){
		"compression":   func(o *Options) { o.Compression = CompressionZSTD + 1 },
		"block cache":   func(o *Options) { o.BlockCacheSize = -1 },
		"memtables":     func(o *Options) { o.NumMemtables = 0 },
		"release every": func(o *Options) { o.TableReleaseInterval = -time.Second },
	} {
		o := InMemoryOptions()
		bad(&o)
		if err := o.Validate(); err == nil {
			t.Fatalf("bad %s accepted", name)
		}
	}
}

// A store keeps reading what it wrote whatever the compression it is
// reopened with (Badger records each table's own), compressed tables
// without a block cache configured included: stores written before
// CompressionNone became the default hold Snappy tables.
func TestReopenWithOtherCompression(t *testing.T) {
	for _, c := range []struct{ from, to Compression }{
		{CompressionSnappy, CompressionNone},
		{CompressionNone, CompressionZSTD},
	} {
		t.Run(c.from.String()+"-to-"+c.to.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(dir)
			o.Compression = c.from
			o.MemTableSize = 1 << 20
			o.Limits.MaxSessionBytes = 64 << 10 // lets the memtable be 1 MiB: many tables
			s := openStore(t, o)
			want := map[string]string{}
			for i := 0; i < 3000; i += 100 {
				var batch []*crdt.Session
				for j := i; j < i+100; j++ {
					x := newSession(fmt.Sprintf("s%05d", j), 1, t0, 8)
					want[x.ID] = encoded(t, x)
					batch = append(batch, x)
				}
				apply(t, s, t0, batch...)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.Compression = c.to
			s = openStore(t, o)
			if n := len(badgerDB(t, s).Tables()); n < 2 {
				t.Fatalf("%d tables: the test reads nothing from them", n)
			}
			for id, w := range want {
				if got := encoded(t, mustGet(t, s, id)); got != w {
					t.Fatalf("session %s differs after reopening with %s", id, c.to)
				}
			}
		})
	}
}

func TestDurabilityModes(t *testing.T) {
	for _, d := range []Durability{DurabilitySync, DurabilityGroup, DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(dir)
			o.Durability = d
			s, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				apply(t, s, t0, newSession(string(rune('a'+i)), 1, t0, 1))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, o)
			for i := range 20 {
				mustGet(t, s, string(rune('a'+i)))
			}
		})
	}
}

func TestMergedStateOverLimitIsRefused(t *testing.T) {
	o := testOptions("")
	o.Limits.MaxFields = 4
	s := openStore(t, o)
	base := newSession("full", 1, t0, 0)
	apply(t, s, t0, base)
	mk := func(node crdt.NodeID, keys ...string) *crdt.Session {
		d := base.Clone()
		for i, k := range keys {
			_, _ = d.Merge(base.Set(k, []byte("v"), crdt.NewTimestamp(t0.UnixMilli()+int64(i)+1, 0, node)))
		}
		return d
	}
	apply(t, s, t0, mk(1, "a", "b", "c"))
	res := apply(t, s, t0, mk(2, "d", "e"), newSession("other", 1, t0, 1))
	if len(res.Refused) != 1 || res.Refused[0].ID != "full" || !errors.Is(res.Refused[0].Err, crdt.ErrTooLarge) {
		t.Fatalf("refused = %+v", res.Refused)
	}
	if len(res.Changes) != 1 || res.Changes[0].ID != "other" {
		t.Fatalf("the rest of the batch must still apply: %+v", res.Changes)
	}
	if got := mustGet(t, s, "full"); len(got.Keys()) != 3 {
		t.Fatalf("keys = %v", got.Keys())
	}
}

// TestBackgroundSync: with durability none, a write marks the store, and
// the background loop fsyncs Badger's logs through its own descriptors
// within SyncInterval, without errors.
func TestBackgroundSync(t *testing.T) {
	o := testOptions(t.TempDir())
	o.Durability = DurabilityNone
	o.SyncInterval = 5 * time.Millisecond
	var logs strings.Builder
	var mu sync.Mutex
	o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelError}))
	s := openStore(t, o)
	apply(t, s, t0, newSession("a", 1, t0, 3))
	if !s.dirty.Load() {
		t.Fatal("a write did not mark the store for the next fsync")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.dirty.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the background fsync did not run")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.be.sync(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() > 0 {
		t.Fatalf("errors logged: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSyncCoversUnflushedWrites: the background fsync of durability none
// must reach every file that holds a write Badger has not put in a table
// yet, whatever Badger names it: a small value (kept in the memtable's
// write-ahead log) and a large one (kept in the value log).
func TestSyncCoversUnflushedWrites(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.Durability = DurabilityNone
	o.SyncInterval = time.Hour // the test calls syncTargets itself
	o.MemTableSize = 1 << 20   // values over 15% of it go to the value log
	o.Limits.MaxValueBytes = 256 << 10
	s := openStore(t, o)
	small := []byte("small-marker-7f3a9c")
	large := append([]byte("large-marker-b81e44"), make([]byte, 200<<10)...)
	sess := newSession("a", 1, t0, 0)
	ts := crdt.NewTimestamp(t0.UnixMilli()+1, 0, 1)
	apply(t, s, t0, sess.Set("small", small, ts), sess.Set("large", large, ts))
	be, ok := s.be.(*badgerBackend)
	if !ok {
		t.Fatalf("backend is %T", s.be)
	}
	targets, err := be.syncTargets()
	if err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range [][]byte{small, large[:19]} {
		var holders []string
		for _, f := range files {
			p := filepath.Join(dir, f.Name())
			if fileContains(t, p, marker) {
				holders = append(holders, p)
			}
		}
		if len(holders) == 0 {
			t.Fatalf("no file holds %q: the test no longer sees where Badger keeps writes", marker)
		}
		for _, h := range holders {
			if !slices.Contains(targets, h) {
				t.Errorf("%s holds an unflushed write (%q) but the background sync skips it (it syncs %v)", filepath.Base(h), marker, targets)
			}
		}
	}
}

// fileContains reports whether the file at p holds marker, reading its data
// only: Badger preallocates its logs sparse (2 GiB for a value log).
func fileContains(t *testing.T, p string, marker []byte) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	const seekData, seekHole = 3, 4 // lseek(2) whences on Linux
	var off int64
	for {
		start, err := f.Seek(off, seekData)
		if err != nil {
			return false // no data after off (ENXIO), or no SEEK_DATA here
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			t.Fatalf("seek hole in %s: %v", p, err)
		}
		// Overlap the previous segment by the marker's length.
		from := max(0, start-int64(len(marker)))
		b := make([]byte, end-from)
		if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read %s: %v", p, err)
		}
		if bytes.Contains(b, marker) {
			return true
		}
		off = end
	}
}
