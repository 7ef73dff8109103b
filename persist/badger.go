package persist

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/y"

	"github.com/sessionmesh/sessionmesh/crdt"
)

var (
	formatKey = []byte("mformat")
	// formatMarker names the record layout (record.go). Version 1 kept a
	// session in one record. Version 3 added the idle timeout's stamp at
	// the end of a header record, when there is one: version 2's records
	// are version 3's without it, so a version 2 store is upgraded in
	// place by rewriting its marker (formatV2), and a build that reads
	// only version 2 refuses a version 3 store (ErrForeign) instead of
	// misreading it.
	//
	// Version 4 lets a field record carry the session's version entries
	// (riders, record.go): version 3's records are version 4's without
	// riders, so a version 3 store is upgraded in place the same way, and
	// a build that reads only version 3 refuses a version 4 store.
	formatMarker = []byte("sessionmesh/persist/4")
	formatV2     = "sessionmesh/persist/2"
	formatV3     = "sessionmesh/persist/3"
)

// upgradable reports whether a store of format v reads unchanged under
// formatMarker once its marker is rewritten.
func upgradable(v string) bool { return v == formatV2 || v == formatV3 }

// maxValueThreshold is Badger's largest value threshold: values from it
// up go to the value log.
const maxValueThreshold = 1 << 20

// recordSlack bounds what a session's header record adds to its encoded
// size (Limits.MaxSessionBytes).
const recordSlack = 16 << 10

// badgerMagic is written into Badger's manifest, so that another
// application's Badger directory is refused at Open instead of being mixed
// with ours.
const badgerMagic = 0x534d // "SM"

// defaultBlockCache is the block cache of a store that compresses or
// encrypts with Options.BlockCacheSize left at 0.
const defaultBlockCache = 8 << 20

var badgerCompression = map[Compression]options.CompressionType{
	CompressionNone:   options.None,
	CompressionSnappy: options.Snappy,
	CompressionZSTD:   options.ZSTD,
}

// badgerBackend keeps sessions in Badger on disk.
type badgerBackend struct {
	db  *badger.DB
	dir string
	// mapsDir is dir as /proc/self/maps names it (absolute, symbolic
	// links resolved), for releaseTablePages; empty if it cannot be told.
	mapsDir string
	// noPageout is set once the kernel refuses MADV_PAGEOUT.
	noPageout atomic.Bool
	log       *slog.Logger
	// seekHook, set only by tests, is called with nil, nil as a scan
	// starts and, at every seek, with the key sought and the one the
	// iterator rests on (nil before the first seek, past every session
	// record once it ran off their end): what keeps scans
	// linear after churn is where they seek, which timings on a shared
	// machine cannot tell reliably.
	seekHook func(key, at []byte)
}

func openBadger(o Options) (*badgerBackend, error) {
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	// Session records stay in the LSM tree, out of the value log: Badger's
	// value-log GC rewrites a value whose key a later tombstone deletes,
	// and when the tombstone is compacted away before the rewritten copy,
	// the key comes back (a test saw collected sessions revived). Badger
	// keeps in the tree values below its value threshold, which it caps at
	// 15% of the memtable and at 1 MiB: the memtable is raised so that
	// the largest record Limits allow fits under it.
	memTable := o.MemTableSize
	record := int64(o.Limits.MaxSessionBytes) + recordSlack
	if record < maxValueThreshold {
		memTable = max(memTable, (record+1)*100/15+1)
	} else {
		o.Logger.Warn("sessions larger than 1 MiB go to Badger's value log, whose GC may revive some collected ones",
			"max_session_bytes", o.Limits.MaxSessionBytes)
	}
	blockCache := o.BlockCacheSize
	if o.Compression == CompressionNone && o.EncryptionKey == nil {
		// Blocks are read in place from the tables' pages: a cache would
		// hold copies of them.
		blockCache = 0
	} else if blockCache == 0 {
		// Badger panics at Open without one when it must decode blocks.
		blockCache = defaultBlockCache
	}
	bo := badger.DefaultOptions(o.Dir).
		// Sync and Group modes fsync every transaction; the committer makes
		// one transaction of the Apply calls that arrive together.
		WithSyncWrites(o.Durability != DurabilityNone).
		WithLogger(badgerLogger{o.Logger}).
		WithExternalMagic(badgerMagic).
		WithMemTableSize(memTable).
		WithBaseTableSize(o.BaseTableSize).
		// Badger refuses a value threshold above 15% of the memtable.
		WithValueThreshold(min(maxValueThreshold, 15*memTable/100)).
		WithValueLogFileSize(max(o.ValueLogFileSize, 2*int64(o.Limits.MaxSessionBytes))).
		WithNumMemtables(o.NumMemtables).
		WithNumCompactors(2).
		WithCompression(badgerCompression[o.Compression]).
		WithBlockCacheSize(blockCache).
		// The committer is the store's only writer: conflict detection
		// would only cost memory and time per transaction.
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	if o.EncryptionKey != nil {
		// Badger requires an index cache with encryption.
		bo = bo.WithEncryptionKey(o.EncryptionKey).WithIndexCacheSize(16 << 20)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, classifyOpenError(o.Dir, err)
	}
	b := &badgerBackend{db: db, dir: o.Dir, log: o.Logger.With("component", "persist")}
	if abs, err := filepath.Abs(o.Dir); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			b.mapsDir = real
		}
	}
	if err := b.checkFormat(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("persist: open %s: %w", o.Dir, err)
	}
	return b, nil
}

// checkDir refuses a directory that has files but no Badger manifest: it
// belongs to someone else, and Badger would create its files beside theirs.
func checkDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("persist: open %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return fmt.Errorf("persist: open %s: %w: directory is not empty and has no store manifest", dir, ErrForeign)
	}
	return nil
}

// classifyOpenError maps Badger's open errors to ours: by errors.Is on
// Badger's sentinels and the system's errors, and by text as well, because
// Badger's y.Wrap flattens the chain it wraps (it formats the cause with
// %+v), its manifest errors are unexported, and the external-magic one is
// formatted without %w. TestOpenRefusesForeignAndCorruptData fails the
// day the texts change.
func classifyOpenError(where string, err error) error {
	lower := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrBadKey, err)
	case errors.Is(err, syscall.EWOULDBLOCK), strings.Contains(lower, "directory lock"):
		// flock(LOCK_EX|LOCK_NB) on the directory, held by another process.
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrLocked, err)
	case strings.Contains(lower, "external magic"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrForeign, err)
	case errors.Is(err, y.ErrChecksumMismatch), errors.Is(err, badger.ErrTruncateNeeded),
		strings.Contains(lower, "magic"), strings.Contains(lower, "checksum"), strings.Contains(lower, "corrupt"),
		strings.Contains(lower, "manifest"), strings.Contains(lower, "truncate"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrCorrupt, err)
	}
	// Anything else (no space, too many files, I/O errors) is not called
	// corruption: a caller must not wipe a store over a full disk.
	return fmt.Errorf("persist: open %s: %w", where, err)
}

// checkFormat writes the format marker into a new store and checks it in an
// existing one.
func (b *badgerBackend) checkFormat() error {
	return b.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			it.Rewind()
			empty := !it.Valid()
			it.Close()
			if !empty {
				return fmt.Errorf("%w: data without a format marker", ErrForeign)
			}
			return txn.Set(formatKey, formatMarker)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if string(v) == "sessionmesh/persist/1" {
			// Pre-release layout: one record per session. A peer's
			// store is a replica, so the way forward is to move it aside
			// and let anti-entropy refill the peer from the mesh.
			return fmt.Errorf("%w: store written by an older sessionmesh (format %q, this build reads %q): "+
				"move the directory aside and restart; the peer refills from the mesh", ErrForeign, v, formatMarker)
		}
		if upgradable(string(v)) {
			b.log.Info("upgrading the store's format marker: its records read unchanged", "from", string(v), "to", string(formatMarker))
			return txn.Set(formatKey, formatMarker)
		}
		if string(v) != string(formatMarker) {
			return fmt.Errorf("%w: format %q, this build reads %q", ErrForeign, v, formatMarker)
		}
		return nil
	})
}

func (b *badgerBackend) load(id string) (*crdt.Session, error) {
	var out *crdt.Session
	err := b.db.View(func(txn *badger.Txn) error {
		// A point lookup first: Badger's bloom filters answer it for an
		// absent session (a new one, or anti-entropy bringing many) without
		// the cost of an iterator over every level.
		item, err := txn.Get(headerKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var d decoder
		if err := d.add(item); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(sessionPrefix(id), kindField)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := d.add(it.Item()); err != nil {
				return err
			}
		}
		out, err = d.finish()
		return err
	})
	return out, err
}

// decoder rebuilds sessions from their records in key order.
type decoder struct {
	cur *crdt.Session
	err error // the current session cannot be read
}

// add takes the next record. A record of another session first finishes
// the current one, which it returns.
func (d *decoder) add(item *badger.Item) error {
	id, kind, key, err := parseSessionKey(item.Key())
	if err != nil {
		return err
	}
	if d.cur != nil && d.cur.ID != id {
		return errNextSession
	}
	if d.cur == nil {
		d.cur = &crdt.Session{ID: id}
	}
	if d.err != nil {
		return nil
	}
	err = item.Value(func(v []byte) error {
		if kind == kindHeader {
			h, fields, err := decodeHeaderRecord(v)
			if err != nil {
				return err
			}
			d.cur.Created, d.cur.Absolute, d.cur.Idle, d.cur.IdleTS, d.cur.LastAccess, d.cur.Destroyed =
				h.created, h.absolute, h.idle, h.idleTS, h.lastAccess, h.destroyed
			d.cur.Fields = fields
			return nil
		}
		f, riders, err := decodeFieldRecord(v)
		if err != nil {
			return err
		}
		if d.cur.IsDestroyed() {
			return nil // a tombstone keeps no field
		}
		d.join(key, f)
		if riders == nil {
			return nil
		}
		n, riders, err := ridersCount(riders)
		if err != nil {
			return err
		}
		for range n {
			var k string
			if k, f, riders, err = nextRider(riders); err != nil {
				return err
			}
			d.join(k, f)
		}
		if len(riders) != 0 {
			return fmt.Errorf("%w: %d bytes after a field record's riders", ErrCorrupt, len(riders))
		}
		return nil
	})
	if err != nil {
		d.err = fmt.Errorf("persist: read %q: %w", id, err)
	}
	return nil
}

// join merges field register f of key into the current session: the
// latest of a session's copies of a register wins, whichever record holds
// it (header, field record, rider).
func (d *decoder) join(key string, f crdt.Field) {
	if cur, ok := d.cur.Fields.Get(key); !ok || f.Compare(cur) > 0 {
		d.cur.Fields = d.cur.Fields.With(key, f)
	}
}

// errNextSession tells a scan that a record starts another session.
var errNextSession = errors.New("next session")

// finish returns the session whose records were added (nil if none), or
// why it cannot be read, and resets the decoder.
func (d *decoder) finish() (*crdt.Session, error) {
	s, err := d.cur, d.err
	d.cur, d.err = nil, nil
	if s == nil || err != nil {
		return nil, err
	}
	if err := storageLimits.Check(s); err != nil {
		return nil, fmt.Errorf("persist: read %q: %w: %w", s.ID, ErrCorrupt, err)
	}
	return s, nil
}

// scan calls fn with every session under each of prefixes (ascending, not
// overlapping), in key order, from one snapshot and one iterator: a
// repair wanting thousands of buckets pays for one iterator, not one per
// bucket. Sessions that cannot be read go to bad.
func (b *badgerBackend) scan(ctx context.Context, prefixes [][]byte, fn func(*crdt.Session) error, bad func(error)) error {
	return b.db.View(func(txn *badger.Txn) error {
		// No prefetch: it would read ahead past the end of each bucket at every
		// Seek, and values live inline in the tree (cheap to read one by one).
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixSession}})
		defer it.Close()
		var d decoder
		sought := false
		if b.seekHook != nil {
			b.seekHook(nil, nil)
		}
		emit := func() error {
			s, err := d.finish()
			if err != nil {
				bad(err)
				return nil
			}
			if s == nil {
				return nil
			}
			return fn(s)
		}
		for _, prefix := range prefixes {
			// The iterator only moves forward. Badger finds the first live
			// record at or after a key by stepping over every delete marker
			// and overwritten version on the way, and after a bucket it
			// rests on the first live record past it: seeking each bucket
			// again would step over the same dead records once per bucket,
			// which after heavy churn made a full scan quadratic (seconds
			// for an empty store). So it seeks only forward, and once it has
			// run off the end, nothing live is left to find.
			switch {
			case !sought || it.Valid() && bytes.Compare(it.Item().Key(), prefix) < 0:
				if b.seekHook != nil {
					var at []byte
					switch {
					case sought && it.Valid():
						at = it.Item().Key()
					case sought: // run off the end of the sessions
						at = []byte{prefixSession + 1}
					}
					b.seekHook(prefix, at)
				}
				it.Seek(prefix)
				sought = true
			case !it.Valid():
				return nil
			}
			for it.ValidForPrefix(prefix) {
				if err := ctx.Err(); err != nil {
					return err
				}
				err := d.add(it.Item())
				if errors.Is(err, errNextSession) {
					if err := emit(); err != nil {
						return err
					}
					continue // the same record starts the next session
				}
				if err != nil {
					return err
				}
				it.Next()
			}
			if err := emit(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *badgerBackend) scanBuckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error, bad func(error)) error {
	prefixes := make([][]byte, len(buckets))
	for i, bk := range buckets {
		p := []byte{prefixSession, 0, 0}
		binary.BigEndian.PutUint16(p[1:], uint16(bk))
		prefixes[i] = p
	}
	return b.scan(ctx, prefixes, fn, bad)
}

func (b *badgerBackend) scanAll(fn func(*crdt.Session) error, bad func(error)) error {
	return b.scan(context.Background(), [][]byte{{prefixSession}}, fn, bad)
}

func (b *badgerBackend) due(cutoff int64, limit int, after *dueEntry) ([]dueEntry, bool, error) {
	var out []dueEntry
	more := false
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixExpiry}})
		defer it.Close()
		// A pass removes chunk after chunk: starting each past the last
		// one's entries spares stepping over their fresh delete markers
		// again (quadratic in the size of a pass).
		if after != nil {
			it.Seek(expiryKey(after.deadline, after.id))
		} else {
			it.Rewind()
		}
		for ; it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 9 {
				return fmt.Errorf("%w: short index key %x", ErrCorrupt, k)
			}
			deadline := int64(binary.BigEndian.Uint64(k[1:9]))
			if deadline > cutoff {
				return nil
			}
			if len(out) == limit {
				more = true
				return nil
			}
			out = append(out, dueEntry{deadline: deadline, id: string(k[9:])})
		}
		return nil
	})
	return out, more, err
}

// commit writes ws in one transaction. When they are too many or too
// large for one, it writes nothing and fails with errTooBig: the store
// decides where to cut.
func (b *badgerBackend) commit(ws []write) (int, error) {
	err := b.commitOnce(ws)
	if errors.Is(err, badger.ErrTxnTooBig) {
		return 0, fmt.Errorf("%w: %d writes: %w", errTooBig, len(ws), err)
	}
	if err != nil {
		return 0, err
	}
	return len(ws), nil
}

func (b *badgerBackend) commitOnce(ws []write) error {
	// Blind writes: the store's single committer read what it merges, so
	// Badger's conflict detection has nothing to do.
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	// Field records to delete are looked up in a read transaction: the
	// committer is the only writer, so it sees what the writes replace,
	// while an iterator of txn would sort all of txn's pending writes,
	// once per destroyed session (quadratic in a collection chunk).
	var rd *badger.Txn
	defer func() {
		if rd != nil {
			rd.Discard()
		}
	}()
	reader := func() *badger.Txn {
		if rd == nil {
			rd = b.db.NewTransaction(false)
		}
		return rd
	}
	sl := newSlab(ws)
	// Badger has copied the records out once Commit returned (its end of
	// the transaction), and a transaction that failed before never reads
	// them again: Discard only releases its read timestamp.
	defer putSlab(sl)
	for _, w := range ws {
		if err := b.writeSession(txn, reader, sl, w); err != nil {
			return err
		}
		if w.oldDeadline == w.newDeadline {
			continue
		}
		if w.oldDeadline != 0 {
			if err := txn.Delete(expiryKey(w.oldDeadline, w.id)); err != nil {
				return err
			}
		}
		if w.newDeadline != 0 {
			if err := txn.Set(expiryKey(w.newDeadline, w.id), nil); err != nil {
				return err
			}
		}
	}
	return txn.Commit()
}

// slab holds the keys and values of one transaction's field records in a
// few large buffers rather than in two or three allocations each: Badger
// copies them into its log and memtable, and keeps them no longer than the
// transaction (Txn.Set: not to be modified until its end), so a slab is
// reused once its transaction is over (putSlab).
type slab struct{ buf []byte }

// slabs keeps slabs from one transaction to the next: a slab was about a
// twentieth of the garbage of a replicated write.
var slabs = sync.Pool{New: func() any { return new(slab) }}

// maxPooledSlab bounds the slabs kept: a rare large transaction's goes.
const maxPooledSlab = 1 << 20

// putSlab returns sl for reuse, once the transaction that used it is
// committed or discarded.
func putSlab(sl *slab) {
	if cap(sl.buf) <= maxPooledSlab {
		sl.buf = sl.buf[:0]
		slabs.Put(sl)
	}
}

// newSlab sizes a slab for the field records of ws.
func newSlab(ws []write) *slab {
	n := 0
	for _, w := range ws {
		if w.header || w.state == nil || w.state.IsDestroyed() {
			continue
		}
		riders := 0
		if userFields(w.fields) {
			riders = ridersLen(w.state)
		}
		for _, k := range w.fields {
			f, _ := w.state.Fields.Get(k)
			n += fieldRecordLen(w.id, k, f) + riders
		}
	}
	sl := slabs.Get().(*slab)
	if cap(sl.buf) < n {
		sl.buf = make([]byte, 0, n)
	}
	return sl
}

// userFields reports whether keys hold a key that is not a version entry:
// a write of such keys carries the session's version entries in their
// records (riders) and writes no record of its own for the entries.
func userFields(keys []string) bool {
	for _, k := range keys {
		if !isVersionKey(k) {
			return true
		}
	}
	return false
}

func fieldRecordLen(id, k string, f crdt.Field) int {
	return fieldKeyLen(id, k) + 2*binary.MaxVarintLen64 + 1 + len(f.Value)
}

// reserve makes room for n more bytes without moving what was handed out.
func (s *slab) reserve(n int) {
	if cap(s.buf)-len(s.buf) < n {
		s.buf = make([]byte, 0, n)
	}
}

// from returns what was appended since start, capped.
func (s *slab) from(start int) []byte { return s.buf[start:len(s.buf):len(s.buf)] }

func (b *badgerBackend) writeSession(txn *badger.Txn, reader func() *badger.Txn, sl *slab, w write) error {
	if w.state == nil || w.state.IsDestroyed() {
		// Every field record goes, found by a key scan: most fields live
		// in the header record only, and deleting keys that were never
		// written would leave tombstones in the tree for nothing.
		var keys [][]byte
		it := reader().NewIterator(badger.IteratorOptions{Prefix: append(sessionPrefix(w.id), kindField)})
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if w.state == nil {
			return txn.Delete(headerKey(w.id))
		}
		return txn.Set(headerKey(w.id), encodeHeaderRecord(w.state))
	}
	if w.header {
		// The header record carries every field: a new session is one
		// record, and field records older than it lose to its copies.
		return txn.Set(headerKey(w.id), encodeHeaderRecord(w.state))
	}
	// One record per user field written, each carrying the session's
	// version entries (record.go); entries written alone (a merge that
	// moved only them) get records of their own.
	ride := userFields(w.fields)
	riders := 0
	if ride {
		riders = ridersLen(w.state)
	}
	for _, k := range w.fields {
		if ride && isVersionKey(k) {
			continue
		}
		f, _ := w.state.Fields.Get(k)
		sl.reserve(fieldRecordLen(w.id, k, f) + riders)
		start := len(sl.buf)
		sl.buf = appendFieldKey(sl.buf, w.id, k)
		key := sl.from(start)
		start = len(sl.buf)
		if ride {
			sl.buf = appendFieldRiders(sl.buf, f, w.state)
		} else {
			sl.buf = appendField(sl.buf, f)
		}
		if err := txn.Set(key, sl.from(start)); err != nil {
			return err
		}
	}
	return nil
}

// sync fsyncs Badger's logs (memtable write-ahead logs and value logs)
// through file descriptors of its own. Badger's DB.Sync msyncs them holding
// the lock that every write takes, so a sync of a second's worth of writes
// stalled them all for its duration; an fsync of the files flushes the same
// pages (writes through a shared mapping dirty the page cache) without it.
// It covers the memtables Badger has rotated out but not flushed yet, which
// DB.Sync does not.
func (b *badgerBackend) sync() error {
	paths, err := b.syncTargets()
	if err != nil {
		return fmt.Errorf("persist: sync: %w", err)
	}
	var errs []error
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // flushed and removed meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		_ = f.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persist: sync: %w", err)
	}
	return nil
}

// syncTargets lists the files sync fsyncs: every file of the store but
// its tables, rather than the logs by name (*.mem, *.vlog), so that
// durability does not depend on Badger's file names. Tables (*.sst) are
// skipped as they are many, written once and fsynced by Badger before it
// uses them; were they renamed, sync would only do more work.
// TestSyncCoversUnflushedWrites checks that every file holding a write not
// yet in a table is listed.
func (b *badgerBackend) syncTargets() ([]string, error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".sst") {
			continue
		}
		out = append(out, filepath.Join(b.dir, e.Name()))
	}
	return out, nil
}

// reclaim runs Badger's value-log GC until it finds nothing to rewrite.
// Badger never gives back the space of deleted keys on its own.
func (b *badgerBackend) reclaim() {
	for range 16 {
		if err := b.db.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				b.log.Warn("value log GC failed", "err", err)
			}
			return
		}
	}
}

func (b *badgerBackend) releasePages() (int, error) { return b.releaseTablePages() }

func (b *badgerBackend) close() error {
	err := b.db.Sync()
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}
