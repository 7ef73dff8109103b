package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// gcChunk is how many sessions one collection transaction removes, so that
// a pass never holds a long transaction against writers.
const gcChunk = 256

// CollectGarbage removes at most budget sessions and tombstones whose
// absolute deadline plus MaxDrift has passed at now (crdt.Session.Collectable):
// every copy of them anywhere is expired, and Admit refuses their deltas, so
// forgetting them cannot revive anything. It walks the deadline index, so its
// cost is proportional to what it removes. It returns how many it removed.
// Readers are never blocked.
func (s *Store) CollectGarbage(now time.Time, budget int) (int, error) {
	if !s.enter() {
		return 0, ErrClosed
	}
	defer s.leave()
	cutoff := now.UnixMilli() - s.opts.MaxDrift.Milliseconds()
	removed, visited := 0, 0
	for visited < budget {
		n, seen, more, err := s.collectChunk(cutoff, now, min(gcChunk, budget-visited))
		removed += n
		visited += seen
		if err != nil || !more {
			return removed, err
		}
	}
	return removed, nil
}

type dueEntry struct {
	indexKey []byte
	id       string
}

// collectChunk visits up to limit due index entries and removes what they
// point to, reporting how many sessions it removed and entries it visited.
func (s *Store) collectChunk(cutoff int64, now time.Time, limit int) (removed, visited int, more bool, err error) {
	var due []dueEntry
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixExpiry}})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(due) < limit; it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) < 9 {
				return fmt.Errorf("%w: short index key %x", ErrCorrupt, k)
			}
			if int64(binary.BigEndian.Uint64(k[1:9])) > cutoff {
				return nil
			}
			due = append(due, dueEntry{indexKey: k, id: string(k[9:])})
		}
		more = it.Valid()
		return nil
	})
	if err != nil || len(due) == 0 {
		return 0, 0, false, err
	}
	var gone []update
	for range maxConflictRetries {
		gone, err = s.removeDue(due, now)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("persist: collect: %w", err)
	}
	for _, u := range gone {
		s.cache.remove(u.state.ID)
		s.digests.update(BucketOf(u.state.ID), u.oldHash, 0)
	}
	return len(gone), len(due), more, nil
}

func (s *Store) removeDue(due []dueEntry, now time.Time) ([]update, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	var gone []update
	for _, e := range due {
		if err := txn.Delete(e.indexKey); err != nil {
			return nil, err
		}
		// The index is written in the same transactions as the sessions,
		// so an entry in it is the session's current deadline: the record
		// need not be decoded (it may not even be readable) to go.
		item, err := txn.Get(sessionKey(e.id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var h uint64
		if err := item.Value(func(v []byte) error { h = entryHash(v); return nil }); err != nil {
			return nil, err
		}
		if err := txn.Delete(sessionKey(e.id)); err != nil {
			return nil, err
		}
		gone = append(gone, update{state: &crdt.Session{ID: e.id}, oldHash: h})
	}
	return gone, txn.Commit()
}

// every runs fn every d until the store closes or fn returns false.
func (s *Store) every(d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

// gcLoop collects garbage every GCInterval and then lets Badger reclaim
// disk: Badger never gives back the space of deleted keys on its own.
func (s *Store) gcLoop() {
	s.every(s.opts.GCInterval, func() bool {
		n, err := s.CollectGarbage(s.opts.Now(), s.opts.GCBatch)
		if errors.Is(err, ErrClosed) {
			return false
		}
		if err != nil {
			s.log.Error("garbage collection failed", "err", err)
			return true
		}
		if n > 0 {
			s.log.Debug("collected expired sessions", "removed", n)
		}
		s.reclaimDisk()
		return true
	})
}

// reclaimLoop runs the value-log GC every ReclaimInterval.
func (s *Store) reclaimLoop() {
	s.every(s.opts.ReclaimInterval, func() bool { s.reclaimDisk(); return true })
}

// reclaimDisk runs Badger's value-log GC until it finds nothing to rewrite.
func (s *Store) reclaimDisk() {
	if s.opts.InMemory {
		return
	}
	if !s.enter() {
		return
	}
	defer s.leave()
	for range 16 {
		if err := s.db.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("value log GC failed", "err", err)
			}
			return
		}
	}
}
