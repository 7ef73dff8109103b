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

	"github.com/dgraph-io/badger/v4"
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

// badgerBackend keeps sessions in Badger on disk.
type badgerBackend struct {
	db  *badger.DB
	log *slog.Logger
}

func openBadger(o Options) (*badgerBackend, error) {
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(o.Dir).
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
	if o.EncryptionKey != nil {
		// Badger requires an index cache with encryption.
		bo = bo.WithEncryptionKey(o.EncryptionKey).WithIndexCacheSize(16 << 20)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, classifyOpenError(o.Dir, err)
	}
	b := &badgerBackend{db: db, log: o.Logger.With("component", "persist")}
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

func classifyOpenError(where string, err error) error {
	msg := err.Error()
	lower := strings.ToLower(msg)
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrBadKey, err)
	case strings.Contains(msg, "directory lock"):
		return fmt.Errorf("persist: open %s: %w: %w", where, ErrLocked, err)
	case strings.Contains(lower, "external magic"):
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
		if string(v) != string(formatMarker) {
			return fmt.Errorf("%w: format %q, this build reads %q", ErrForeign, v, formatMarker)
		}
		return nil
	})
}

func (b *badgerBackend) load(id string) ([]byte, error) {
	var raw []byte
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(sessionKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		raw, err = item.ValueCopy(nil)
		return err
	})
	return raw, err
}

func (b *badgerBackend) scanBucket(ctx context.Context, bucket int, fn func(raw []byte) error) error {
	prefix := []byte{prefixSession, 0, 0}
	binary.BigEndian.PutUint16(prefix[1:], uint16(bucket))
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := it.Item().Value(fn); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *badgerBackend) scanAll(fn func(bucket int, raw []byte) error) error {
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{prefixSession}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) < 3 {
				return fmt.Errorf("%w: short session key %x", ErrCorrupt, k)
			}
			bucket := int(binary.BigEndian.Uint16(k[1:3]))
			if err := item.Value(func(v []byte) error { return fn(bucket, v) }); err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
		}
		return nil
	})
}

func (b *badgerBackend) due(cutoff int64, limit int) ([]dueEntry, bool, error) {
	var out []dueEntry
	more := false
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixExpiry}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
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

// commit writes ws in one transaction, or in several when Badger finds
// them too big for one: then a failure may leave the earlier ones written,
// which the caller's result must not report as lost (it reports the error).
func (b *badgerBackend) commit(ws []write) error {
	err := b.commitOnce(ws)
	if errors.Is(err, badger.ErrTxnTooBig) && len(ws) > 1 {
		half := len(ws) / 2
		if err := b.commit(ws[:half]); err != nil {
			return err
		}
		return b.commit(ws[half:])
	}
	return err
}

func (b *badgerBackend) commitOnce(ws []write) error {
	// Blind writes: the store's single committer read what it merges, so
	// Badger's conflict detection has nothing to do.
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	for _, w := range ws {
		var err error
		if w.enc == nil {
			err = txn.Delete(sessionKey(w.id))
		} else {
			err = txn.Set(sessionKey(w.id), w.enc)
		}
		if err != nil {
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

func (b *badgerBackend) sync() error { return b.db.Sync() }

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

func (b *badgerBackend) close() error {
	err := b.db.Sync()
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}
