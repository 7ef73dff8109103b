package persist

import (
	"errors"
	"fmt"
	"time"
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
	var last *dueEntry
	for visited < budget {
		n, seen, more, err := s.collectChunk(cutoff, now, min(gcChunk, budget-visited), &last)
		removed += n
		visited += seen
		if err != nil || !more {
			return removed, err
		}
	}
	return removed, nil
}

// collectChunk removes up to limit due sessions as the store's writer (no
// Apply commits meanwhile), reporting how many it removed and visited. It
// starts past *last, the last entry of the pass's previous chunk, and
// leaves its own there once every entry of the chunk is removed.
func (s *Store) collectChunk(cutoff int64, now time.Time, limit int, last **dueEntry) (removed, visited int, more bool, err error) {
	c := &s.commit
	c.mu.Lock()
	defer c.mu.Unlock()
	due, more, err := s.be.due(cutoff, limit, *last)
	if err != nil || len(due) == 0 {
		return 0, 0, false, err
	}
	ws := make([]write, 0, len(due))
	hashes := make([]uint64, 0, len(due))
	gone := make([]bool, 0, len(due))
	for _, e := range due {
		// The index is written with the sessions, so an entry in it is the
		// session's current deadline: the session need not be readable to
		// go; its hash is needed for the digest, and its fields to delete.
		w := write{id: e.id, bucket: BucketOf(e.id), oldDeadline: e.deadline}
		var h uint64
		exists := true
		if ce, ok := s.cache.entry(e.id); ok {
			w.old, h = ce.s, ce.hash
		} else {
			old, err := s.read(e.id)
			switch {
			case errors.Is(err, ErrCorrupt):
				// Unreadable: it counted for nothing in the digests.
			case err != nil:
				return 0, 0, false, fmt.Errorf("persist: collect: %w", err)
			case old == nil:
				exists = false
			default:
				w.old, h = old, sessionHash(old)
			}
		}
		ws = append(ws, w)
		hashes = append(hashes, h)
		gone = append(gone, exists)
	}
	written, err := s.commitWrites(ws)
	for i, w := range ws {
		s.cache.remove(w.id)
		if i < written {
			s.digests.update(w.bucket, hashes[i], 0)
			if gone[i] {
				removed++
			}
		}
	}
	if err != nil {
		return removed, written, false, fmt.Errorf("persist: collect: %w", err)
	}
	*last = &due[len(due)-1]
	return removed, len(due), more, nil
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

// reclaimDisk lets the backend give back disk space.
func (s *Store) reclaimDisk() {
	if !s.enter() {
		return
	}
	defer s.leave()
	s.be.reclaim()
}

// releaseLoop drops the mappings of table pages every TableReleaseInterval,
// or less often in a store of many tables: a pass costs about
// releaseCostPerTable of processor time per table besides the pages it
// releases, and passes are spaced releaseSpacing times that apart, so that
// releasing costs about 1% of a core. (Timing the passes did not work: a
// pass that releases much takes long for good reason, and on a busy
// machine its wait for a processor counted too.) A failure changes what
// the process's resident set counts, never what the store holds: it is
// logged, at most once a minute.
func (s *Store) releaseLoop() {
	every := s.opts.TableReleaseInterval
	t := time.NewTimer(every)
	defer t.Stop()
	var logged time.Time
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		tables, err := s.releasePages()
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			if time.Since(logged) > time.Minute {
				s.log.Warn("releasing table pages failed", "err", err)
				logged = time.Now()
			}
		}
		t.Reset(max(every, time.Duration(tables)*releaseCostPerTable*releaseSpacing))
	}
}

const (
	// releaseCostPerTable is about what a pass costs per table (reading
	// its line of /proc/self/maps, listing it twice, one madvise) on the
	// 2-core machine of BenchmarkReleaseTablePages.
	releaseCostPerTable = 10 * time.Microsecond
	// releaseSpacing bounds the share of time spent releasing table pages.
	releaseSpacing = 100
)

// releasePages drops the process's mappings of the pages of the store's
// tables now (see Options.TableReleaseInterval) and returns how many
// tables it went over.
func (s *Store) releasePages() (int, error) {
	if !s.enter() {
		return 0, ErrClosed
	}
	defer s.leave()
	return s.be.releasePages()
}
