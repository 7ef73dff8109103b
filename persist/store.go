package persist

import (
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
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Key layout. Sessions sit under their bucket so that anti-entropy reads a
// bucket with one prefix scan; the expiry index orders sessions by absolute
// deadline so that collection visits only what is due.
//
//	's' bucket(2, big-endian) id           -> crdt.MarshalSession
//	'x' deadline(8, big-endian ms) id      -> empty
//	'm' "format"                           -> formatMarker
const (
	prefixSession = 's'
	prefixExpiry  = 'x'
)

var (
	formatKey    = []byte("mformat")
	formatMarker = []byte("sessionmesh/persist/1")
)

// badgerMagic is written into Badger's manifest, so that another
// application's Badger directory is refused at Open instead of being mixed
// with ours.
const badgerMagic = 0x534d // "SM"

func sessionKey(id string) []byte {
	k := make([]byte, 3+len(id))
	k[0] = prefixSession
	binary.BigEndian.PutUint16(k[1:], uint16(BucketOf(id)))
	copy(k[3:], id)
	return k
}

func expiryKey(deadline int64, id string) []byte {
	k := make([]byte, 9+len(id))
	k[0] = prefixExpiry
	binary.BigEndian.PutUint64(k[1:], uint64(deadline))
	copy(k[9:], id)
	return k
}

// Store is the durable replica: every session this peer holds, with bucket
// digests for anti-entropy and a read cache. It is safe for concurrent use;
// writers need no lock of ours (Badger transactions, retried on conflict).
type Store struct {
	opts      Options
	db        *badger.DB
	log       *slog.Logger
	cache     *cache
	digests   digests
	committer *committer   // DurabilitySync and DurabilityGroup on disk
	dirty     *atomic.Bool // DurabilityNone: written since the last fsync

	// life lets Close wait for the calls in progress: each public call
	// holds it shared, Close takes it exclusively once closing is set.
	life      sync.RWMutex
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// storageLimits decode what this store wrote earlier. They are far wider
// than the configured Limits, which bound what is written, so that lowering
// a limit never makes existing records unreadable.
var storageLimits = crdt.Limits{
	MaxIDBytes: 1 << 16, MaxKeyBytes: 1 << 16, MaxValueBytes: 1 << 30, MaxFields: 1 << 20,
	MaxBatchSessions: 1, MaxBatchBytes: 1 << 30, MaxSessionBytes: 1 << 30, MaxLifetime: 1 << 62,
}

// enter registers a public call; it reports false once Close has begun.
func (s *Store) enter() bool {
	s.life.RLock()
	if s.closing.Load() {
		s.life.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.life.RUnlock() }

// Open opens or creates the store described by o. A directory holding
// anything but a sessionmesh store fails with ErrForeign, unreadable store
// files with ErrCorrupt, a wrong encryption key with ErrBadKey.
func Open(o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	where := o.Dir
	if o.InMemory {
		where = "(in memory)"
	} else if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		// Sync and Group modes fsync every transaction; the committer makes
		// one transaction of the Apply calls that arrive together.
		WithSyncWrites(o.Durability != DurabilityNone).
		WithLogger(badgerLogger{o.Logger}).
		WithExternalMagic(badgerMagic).
		WithMemTableSize(o.MemTableSize).
		// Badger refuses a value threshold above 15% of the memtable.
		WithValueThreshold(min(1<<20, 15*o.MemTableSize/100)).
		WithNumMemtables(3).
		WithNumCompactors(2).
		WithBlockCacheSize(o.BlockCacheSize).
		WithMetricsEnabled(false)
	if o.InMemory {
		bo = bo.WithDir("").WithValueDir("")
	}
	if o.EncryptionKey != nil {
		// Badger requires an index cache with encryption.
		bo = bo.WithEncryptionKey(o.EncryptionKey).WithIndexCacheSize(16 << 20)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, classifyOpenError(where, err)
	}
	s := &Store{
		opts:   o,
		db:     db,
		log:    o.Logger.With("component", "persist"),
		cache:  newCache(o.CacheSessions),
		closed: make(chan struct{}),
	}
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("persist: open %s: %w", where, err)
	}
	if err := s.rebuildDigests(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("persist: open %s: %w", where, err)
	}
	switch {
	case o.InMemory:
	case o.Durability == DurabilityNone:
		s.dirty = new(atomic.Bool)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.syncLoop(s.dirty) }()
	default:
		window := time.Duration(0)
		if o.Durability == DurabilityGroup {
			window = o.GroupWindow
		}
		s.committer = newCommitter(s, window)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.committer.run(s.closed) }()
	}
	if o.ReclaimInterval > 0 && !o.InMemory {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.reclaimLoop() }()
	}
	if o.GCInterval > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.gcLoop() }()
	}
	return s, nil
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

func classifyOpenError(where string, err error) error {
	msg := err.Error()
	lower := strings.ToLower(msg)
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrBadKey, err)
	case strings.Contains(msg, "directory lock"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrLocked, err)
	case strings.Contains(strings.ToLower(msg), "external magic"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrForeign, err)
	case strings.Contains(lower, "magic") || strings.Contains(lower, "checksum") ||
		strings.Contains(lower, "corrupt") || strings.Contains(lower, "manifest") ||
		strings.Contains(lower, "truncate"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrCorrupt, err)
	}
	// Anything else (no space, too many files, I/O errors) is not called
	// corruption: a caller must not wipe a store over a full disk.
	return fmt.Errorf("persist: open %s: %w", where, err)
}

// checkFormat writes the format marker into a new store and checks it in an
// existing one.
func (s *Store) checkFormat() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			empty, err := isEmpty(txn)
			if err != nil {
				return err
			}
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
		if string(v) != string(formatMarker) {
			return fmt.Errorf("%w: format %q, this build reads %q", ErrForeign, v, formatMarker)
		}
		return nil
	})
}

func isEmpty(txn *badger.Txn) (bool, error) {
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	it.Rewind()
	return !it.Valid(), nil
}

// rebuildDigests recomputes every bucket digest from the stored sessions.
// Digests live in memory only, so they can never disagree with the data
// after a crash.
func (s *Store) rebuildDigests() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{prefixSession}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) < 3 {
				return fmt.Errorf("%w: short session key %x", ErrCorrupt, k)
			}
			err := item.Value(func(v []byte) error {
				s.digests.update(int(binary.BigEndian.Uint16(k[1:3])), 0, entryHash(v))
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
		}
		return nil
	})
}

// Close waits for the calls in progress, stops background work, fsyncs and
// closes the store. Further calls fail with ErrClosed.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.life.Lock() // every call in progress has returned
		s.life.Unlock()
		close(s.closed)
		s.wg.Wait()
		err = nil
		if !s.opts.InMemory {
			err = s.db.Sync()
		}
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("persist: close: %w", err)
		}
	})
	return err
}

// Get returns the stored state of a session, tombstones included, or
// ErrNotFound. Hot sessions come from memory. The result is shared: do not
// modify it (Clone it first). Whether the session is visible is the
// caller's decision at its own time (crdt.Session.Visible).
func (s *Store) Get(id string) (*crdt.Session, error) {
	if !s.enter() {
		return nil, ErrClosed
	}
	defer s.leave()
	if c := s.cache.get(id); c != nil {
		return c, nil
	}
	gen := s.cache.generation(id)
	var out *crdt.Session
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		_, out, err = s.readRaw(txn, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	// The fill is dropped if the entry was evicted or removed since the
	// read began: what was read may be older than what a writer left.
	if c := s.cache.fill(out, gen); c != nil {
		return c, nil
	}
	return out, nil
}

// readRaw loads a session inside txn: the stored bytes and their decoding,
// both nil when absent.
func (s *Store) readRaw(txn *badger.Txn, id string) ([]byte, *crdt.Session, error) {
	item, err := txn.Get(sessionKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("persist: read %q: %w", id, err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("persist: read %q: %w", id, err)
	}
	sess, err := crdt.UnmarshalSession(raw, storageLimits)
	if err != nil {
		return nil, nil, fmt.Errorf("persist: read %q: %w: %w", id, ErrCorrupt, err)
	}
	if sess.ID != id {
		return nil, nil, fmt.Errorf("persist: read %q: %w: record holds session %q", id, ErrCorrupt, sess.ID)
	}
	return raw, sess, nil
}

// Digests returns a snapshot of the bucket digests.
func (s *Store) Digests() *Digests { return s.digests.snapshot() }

// Bucket calls fn with every session stored in bucket, in key order, from
// one consistent snapshot. Each session is decoded for this call and belongs
// to fn. An error from fn stops the iteration and is returned.
func (s *Store) Bucket(ctx context.Context, bucket int, fn func(*crdt.Session) error) error {
	if bucket < 0 || bucket >= Buckets {
		return fmt.Errorf("persist: bucket %d out of range [0, %d)", bucket, Buckets)
	}
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	prefix := []byte{prefixSession, 0, 0}
	binary.BigEndian.PutUint16(prefix[1:], uint16(bucket))
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var sess *crdt.Session
			err := it.Item().Value(func(v []byte) error {
				var derr error
				sess, derr = crdt.UnmarshalSession(v, storageLimits)
				return derr
			})
			if err != nil {
				// Skip what cannot be read rather than stop every round.
				s.log.Error("unreadable session record", "bucket", bucket, "key", it.Item().Key(), "err", err)
				continue
			}
			if err := fn(sess); err != nil {
				return err
			}
		}
		return nil
	})
}

// DiskUsage returns the bytes the store's files occupy on disk (allocated
// blocks: Badger preallocates its logs sparsely, so apparent sizes
// overstate it). It is 0 for a store in memory.
func (s *Store) DiskUsage() (int64, error) {
	if s.opts.InMemory {
		return 0, nil
	}
	return diskUsage(s.opts.Dir)
}
