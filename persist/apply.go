package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// maxConflictRetries bounds how often Apply retries a transaction that lost
// a race with another writer of the same session.
const maxConflictRetries = 64

// Refusal is a delta Apply dropped for good, with the reason.
type Refusal struct {
	ID  string
	Err error
}

// Result reports what Apply did with a batch.
type Result struct {
	// Changes lists what the batch changed, one entry per session whose
	// visible state changed, in id order.
	Changes []crdt.Change
	// Deferred holds deltas stamped further ahead than MaxDrift. They were
	// not merged and not lost: offer them again later (anti-entropy does).
	Deferred []*crdt.Session
	// Refused holds deltas dropped for good: invalid, over a limit, or for a
	// session past its absolute deadline.
	Refused []Refusal
}

// update is one session rewritten by a transaction.
type update struct {
	state            *crdt.Session
	oldHash, newHash uint64
	change           crdt.Change
	// refused is set, and nothing written, when the merged state would
	// exceed the limits.
	refused error
}

// Apply merges a batch of deltas into the store at local time now and
// returns what changed. Each batch is merged in one Badger transaction (or,
// for a batch too large for one, in a few, each atomic), retried when it
// conflicts with a concurrent writer. Apply returns after the write is as
// durable as Options.Durability promises.
func (s *Store) Apply(b *crdt.Batch, now time.Time) (Result, error) {
	var res Result
	if s.isClosed() {
		return res, ErrClosed
	}
	admitted := make([]*crdt.Session, 0, b.Len())
	for _, d := range b.Sessions() {
		if err := s.opts.Limits.Check(d); err != nil {
			res.Refused = append(res.Refused, Refusal{ID: d.ID, Err: err})
			continue
		}
		if err := crdt.Admit(d, now, s.opts.MaxDrift); err != nil {
			if errors.Is(err, crdt.ErrClockDrift) {
				res.Deferred = append(res.Deferred, d)
			} else {
				res.Refused = append(res.Refused, Refusal{ID: d.ID, Err: err})
			}
			continue
		}
		admitted = append(admitted, d)
	}
	if len(admitted) == 0 {
		return res, nil
	}
	ups, err := s.commit(admitted)
	if err != nil {
		return res, err
	}
	for _, u := range ups {
		if u.refused != nil {
			res.Refused = append(res.Refused, Refusal{ID: u.state.ID, Err: u.refused})
			continue
		}
		s.digests.update(BucketOf(u.state.ID), u.oldHash, u.newHash)
		s.cache.join(u.state)
		if !u.change.Empty() {
			res.Changes = append(res.Changes, u.change)
		}
	}
	if s.syncer != nil {
		s.syncer.markDirty()
	}
	if s.syncer != nil && s.opts.Durability == DurabilityGroup {
		if err := s.syncer.wait(); err != nil {
			return res, fmt.Errorf("persist: apply: sync: %w", err)
		}
	}
	return res, nil
}

// commit merges deltas in as few transactions as Badger allows.
func (s *Store) commit(deltas []*crdt.Session) ([]update, error) {
	var ups []update
	var err error
	for range maxConflictRetries {
		ups, err = s.commitOnce(deltas)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if errors.Is(err, badger.ErrTxnTooBig) && len(deltas) > 1 {
		half := len(deltas) / 2
		first, err := s.commit(deltas[:half])
		if err != nil {
			return first, err
		}
		second, err := s.commit(deltas[half:])
		return append(first, second...), err
	}
	if err != nil {
		return nil, fmt.Errorf("persist: apply: %w", err)
	}
	return ups, nil
}

func (s *Store) commitOnce(deltas []*crdt.Session) ([]update, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	ups := make([]update, 0, len(deltas))
	for _, d := range deltas {
		cur, oldHash, err := s.read(txn, d.ID)
		if err != nil {
			return nil, err
		}
		oldDeadline := int64(0)
		if cur == nil {
			cur = &crdt.Session{ID: d.ID}
		} else {
			oldDeadline = cur.Absolute
		}
		ch, err := cur.Merge(d)
		if err != nil {
			return nil, err
		}
		enc, err := crdt.MarshalSession(cur, s.opts.Limits)
		if errors.Is(err, crdt.ErrTooLarge) {
			// Each delta was within the limits but their merge is not.
			ups = append(ups, update{state: d, refused: fmt.Errorf("merged state: %w", err)})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("persist: apply %q: %w", d.ID, err)
		}
		newHash := entryHash(enc)
		if oldHash == newHash && oldDeadline != 0 {
			continue
		}
		if err := txn.Set(sessionKey(d.ID), enc); err != nil {
			return nil, err
		}
		if cur.Absolute != oldDeadline {
			if oldDeadline != 0 {
				if err := txn.Delete(expiryKey(oldDeadline, d.ID)); err != nil {
					return nil, err
				}
			}
			if err := txn.Set(expiryKey(cur.Absolute, d.ID), nil); err != nil {
				return nil, err
			}
		}
		ups = append(ups, update{state: cur, oldHash: oldHash, newHash: newHash, change: ch})
	}
	if len(ups) == 0 {
		return nil, nil
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return ups, nil
}

// syncer shares fsyncs among writers (DurabilityGroup) and bounds how long
// a write stays unsynced (DurabilityNone): every window, if anything was
// committed since the last fsync, it fsyncs once for all of it.
type syncer struct {
	db     *badger.DB
	window time.Duration
	log    *slog.Logger

	mu sync.Mutex
	// round is closed once an fsync taken after it was installed has
	// finished, so it covers every commit made before a waiter picked it.
	round *syncRound
	dirty atomic.Bool
}

type syncRound struct {
	done chan struct{}
	err  error
}

func newSyncer(db *badger.DB, window time.Duration, log *slog.Logger) *syncer {
	return &syncer{db: db, window: window, log: log, round: &syncRound{done: make(chan struct{})}}
}

// markDirty records a commit that the next round must cover.
func (s *syncer) markDirty() { s.dirty.Store(true) }

// wait blocks until an fsync that started after the call has finished.
func (s *syncer) wait() error {
	s.mu.Lock()
	r := s.round
	s.dirty.Store(true)
	s.mu.Unlock()
	<-r.done
	return r.err
}

func (s *syncer) run(closed <-chan struct{}) {
	t := time.NewTicker(s.window)
	defer t.Stop()
	for {
		select {
		case <-closed:
			s.syncNow()
			return
		case <-t.C:
			if s.dirty.Load() {
				s.syncNow()
			}
		}
	}
}

func (s *syncer) syncNow() {
	s.mu.Lock()
	s.dirty.Store(false)
	r := s.round
	s.round = &syncRound{done: make(chan struct{})}
	s.mu.Unlock()
	r.err = s.db.Sync()
	if r.err != nil {
		s.log.Error("fsync failed", "err", r.err)
	}
	close(r.done)
}
