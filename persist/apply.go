package persist

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// maxConflictRetries bounds how often a transaction that lost a race with
// another writer of the same keys is retried.
const maxConflictRetries = 32

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
	// Refused holds deltas dropped for good: invalid, over a limit, for a
	// session past its absolute deadline, or for a stored record that
	// cannot be read.
	Refused []Refusal
}

// item is one admitted delta on its way into a transaction; owner tells
// which caller it came from when the committer groups several.
type item struct {
	d     *crdt.Session
	now   time.Time
	owner int
}

// update is what a transaction did with one item.
type update struct {
	owner            int
	state            *crdt.Session
	oldHash, newHash uint64
	change           crdt.Change
	// written is false when the merge changed nothing: the cache still
	// learns the state read, which may be newer than what it holds.
	written bool
	// refused is set, and nothing written, when the delta was dropped.
	refused error
}

// Apply merges a batch of deltas into the store at local time now and
// returns what changed. Apply returns once the write is as durable as
// Options.Durability promises. A batch is merged in one Badger transaction;
// one too large for a transaction is merged in several, and if a later one
// fails, the earlier ones stay merged (Result reports them) and the error
// says what failed.
func (s *Store) Apply(b *crdt.Batch, now time.Time) (Result, error) {
	var res Result
	if b == nil || b.Len() == 0 {
		return res, nil
	}
	if !s.enter() {
		return res, ErrClosed
	}
	defer s.leave()
	items := make([]item, 0, b.Len())
	for _, d := range b.Sessions() {
		if err := s.opts.Limits.Check(d); err != nil {
			res.Refused = append(res.Refused, Refusal{ID: d.ID, Err: err})
			continue
		}
		if err := crdt.CheckDrift(d.MaxMillis(), now, s.opts.MaxDrift); err != nil {
			res.Deferred = append(res.Deferred, d)
			continue
		}
		items = append(items, item{d: d, now: now})
	}
	if len(items) == 0 {
		return res, nil
	}
	var ups []update
	var err error
	if s.committer != nil {
		ups, err = s.committer.submit(items)
	} else {
		ups, err = s.commit(items)
		if s.dirty != nil {
			s.dirty.Store(true)
		}
	}
	s.publish(ups, &res)
	return res, err
}

// publish brings digests and cache up to date with committed updates and
// fills the result.
func (s *Store) publish(ups []update, res *Result) {
	for _, u := range ups {
		switch {
		case u.refused != nil:
			res.Refused = append(res.Refused, Refusal{ID: u.state.ID, Err: u.refused})
		case u.written:
			s.digests.update(BucketOf(u.state.ID), u.oldHash, u.newHash)
			s.cache.join(u.state)
			if !u.change.Empty() {
				res.Changes = append(res.Changes, u.change)
			}
		default:
			s.cache.join(u.state)
		}
	}
}

// commit merges items in as few transactions as Badger allows, retrying on
// conflict with a short jittered backoff.
func (s *Store) commit(items []item) ([]update, error) {
	var ups []update
	var err error
	for attempt := range maxConflictRetries {
		ups, err = s.commitOnce(items)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
		time.Sleep(time.Duration(rand.Int64N(int64(50*time.Microsecond) << min(attempt, 8))))
	}
	if errors.Is(err, badger.ErrTxnTooBig) && len(items) > 1 {
		half := len(items) / 2
		first, err := s.commit(items[:half])
		if err != nil {
			return first, err
		}
		second, err := s.commit(items[half:])
		return append(first, second...), err
	}
	if err != nil {
		return nil, fmt.Errorf("persist: apply: %w", err)
	}
	return ups, nil
}

func (s *Store) commitOnce(items []item) ([]update, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	ups := make([]update, 0, len(items))
	writes := 0
	for _, it := range items {
		d := it.d
		raw, cur, err := s.readRaw(txn, d.ID)
		if errors.Is(err, ErrCorrupt) {
			// Refuse the delta rather than overwrite what cannot be read.
			ups = append(ups, update{owner: it.owner, state: d, refused: err})
			continue
		}
		if err != nil {
			return nil, err
		}
		oldDeadline := int64(0)
		if cur == nil {
			cur = &crdt.Session{ID: d.ID}
		} else {
			oldDeadline = cur.Absolute
		}
		// A delta for a session past its deadline is refused for good, but
		// the deadline is the later of the delta's and the stored one: a
		// tombstone whose issuer never saw a later deadline must still
		// destroy the session here.
		if deadline := max(d.Absolute, oldDeadline); it.now.UnixMilli() >= deadline {
			ups = append(ups, update{owner: it.owner, state: d, refused: fmt.Errorf("%w: session %q deadline %s",
				crdt.ErrExpired, d.ID, time.UnixMilli(deadline).UTC().Format(time.RFC3339))})
			continue
		}
		ch, err := cur.Merge(d)
		if err != nil {
			return nil, err
		}
		enc, err := crdt.MarshalSession(cur, s.opts.Limits)
		if errors.Is(err, crdt.ErrTooLarge) {
			// Each delta was within the limits but the merge is not.
			ups = append(ups, update{owner: it.owner, state: d, refused: fmt.Errorf("merged state: %w", err)})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("persist: apply %q: %w", d.ID, err)
		}
		if raw != nil && bytes.Equal(enc, raw) {
			ups = append(ups, update{owner: it.owner, state: cur})
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
		var oldHash uint64
		if raw != nil {
			oldHash = entryHash(raw)
		}
		writes++
		ups = append(ups, update{owner: it.owner, state: cur, oldHash: oldHash, newHash: entryHash(enc), change: ch, written: true})
	}
	if writes == 0 {
		return ups, nil
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return ups, nil
}

// committer makes one transaction, hence one fsync, of the Apply calls that
// arrive together (DurabilitySync and DurabilityGroup, where Badger syncs
// every transaction). While a group commits, the next one queues; Group
// mode also waits up to its window for more.
type committer struct {
	s      *Store
	window time.Duration
	queue  chan *commitReq
}

type commitReq struct {
	items []item
	done  chan commitRes
}

type commitRes struct {
	ups []update
	err error
}

// maxGroupItems bounds one group's transaction.
const maxGroupItems = 4096

func newCommitter(s *Store, window time.Duration) *committer {
	return &committer{s: s, window: window, queue: make(chan *commitReq, 1024)}
}

func (c *committer) submit(items []item) ([]update, error) {
	req := &commitReq{items: items, done: make(chan commitRes, 1)}
	c.queue <- req
	r := <-req.done
	return r.ups, r.err
}

func (c *committer) run(stop <-chan struct{}) {
	for {
		var first *commitReq
		select {
		case <-stop:
			return
		case first = <-c.queue:
		}
		group := []*commitReq{first}
		n := len(first.items)
		if c.window > 0 {
			timer := time.NewTimer(c.window)
		gather:
			for n < maxGroupItems {
				select {
				case r := <-c.queue:
					group = append(group, r)
					n += len(r.items)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
	drain:
		for n < maxGroupItems {
			select {
			case r := <-c.queue:
				group = append(group, r)
				n += len(r.items)
			default:
				break drain
			}
		}
		c.commitGroup(group)
	}
}

func (c *committer) commitGroup(group []*commitReq) {
	var all []item
	for i, r := range group {
		for _, it := range r.items {
			it.owner = i
			all = append(all, it)
		}
	}
	ups, err := c.s.commit(all)
	per := make([][]update, len(group))
	for _, u := range ups {
		per[u.owner] = append(per[u.owner], u)
	}
	for i, r := range group {
		r.done <- commitRes{ups: per[i], err: err}
	}
}

// syncLoop bounds how long writes stay unsynced in DurabilityNone: every
// window, if anything was committed since, one fsync.
func (s *Store) syncLoop(dirty *atomic.Bool) {
	s.every(s.opts.GroupWindow, func() bool {
		if dirty.Swap(false) {
			if err := s.db.Sync(); err != nil {
				s.log.Error("fsync failed", "err", err)
			}
		}
		return true
	})
}
