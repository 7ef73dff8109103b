package persist

import (
	"errors"
	"fmt"
	"sync"
	"time"

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

// item is one admitted delta on its way into a commit; owner tells which
// request it came from when the committer groups several.
type item struct {
	d     *crdt.Session
	now   time.Time
	owner int
}

// Apply merges a batch of deltas into the store at local time now and
// returns what changed. Apply returns once the write is as durable as
// Options.Durability promises. A batch is committed atomically when the
// backend can (one Badger transaction); one too large for a transaction is
// committed in several, and if a later one fails the error says so, while
// the earlier ones stay merged.
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
	out, err := s.commit.submit(items)
	res.Changes = append(res.Changes, out.Changes...)
	res.Refused = append(res.Refused, out.Refused...)
	return res, err
}

// committer is the store's only writer. Apply calls queue their items; one
// caller at a time leads: it takes everything queued and commits it as one
// group (one transaction, one fsync), so that calls arriving while a commit
// is in progress share the next one, and the others just wait for their
// result. Being the only writer, it merges into the cached state without
// reading the backend, and never conflicts.
type committer struct {
	s      *Store
	window time.Duration // DurabilityGroup: wait this long for more

	mu sync.Mutex // held while a group commits; collection takes it too

	qmu     sync.Mutex
	queue   []*commitReq
	leading bool // a caller is leading
}

type commitReq struct {
	items []item
	done  chan commitRes
	// lead tells a waiting caller that it leads now: the leader before it
	// had its own result and left.
	lead chan struct{}
}

type commitRes struct {
	res Result
	err error
}

// maxGroupItems bounds one group's transaction.
const maxGroupItems = 4096

func (c *committer) submit(items []item) (Result, error) {
	req := &commitReq{items: items, done: make(chan commitRes, 1), lead: make(chan struct{}, 1)}
	c.qmu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.qmu.Unlock()
		select {
		case r := <-req.done:
			return r.res, r.err
		case <-req.lead:
		}
	} else {
		c.leading = true
		c.qmu.Unlock()
	}
	for {
		if c.window > 0 {
			time.Sleep(c.window)
		}
		if group := c.take(); len(group) > 0 {
			c.mu.Lock()
			c.commitGroup(group)
			c.mu.Unlock()
		}
		select {
		case r := <-req.done:
			// Hand over rather than serve the others for ever: a leader
			// under steady load would never return.
			c.qmu.Lock()
			if len(c.queue) > 0 {
				c.queue[0].lead <- struct{}{}
			} else {
				c.leading = false
			}
			c.qmu.Unlock()
			return r.res, r.err
		default:
			// Ours did not fit in that group: go on.
		}
	}
}

// take dequeues requests up to maxGroupItems (at least one).
func (c *committer) take() []*commitReq {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n, i := 0, 0
	for i < len(c.queue) && (i == 0 || n+len(c.queue[i].items) <= maxGroupItems) {
		n += len(c.queue[i].items)
		i++
	}
	group := c.queue[:i:i]
	c.queue = c.queue[i:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return group
}

// staged is a session's state as a group leaves it.
type staged struct {
	state    *crdt.Session
	hash     uint64 // of the stored encoding; 0 when absent
	deadline int64  // in the backend's index; 0 when absent
	// enc is the encoding of state once a delta merged, and encHash its
	// hash: a write is due when it differs from hash.
	enc     []byte
	encHash uint64
}

// commitGroup merges the items of a group, commits what changed in one
// backend commit, then publishes the new states to the cache and digests.
// The caller holds c.mu.
func (c *committer) commitGroup(group []*commitReq) {
	s := c.s
	res := make([]Result, len(group))
	states := make(map[string]*staged)
	var order []string
	type change struct {
		owner int
		ch    crdt.Change
	}
	var changes []change
	var fatal error
	for owner, r := range group {
		for _, it := range r.items {
			d := it.d
			st, ok := states[d.ID]
			if !ok {
				var err error
				st, err = s.base(d.ID)
				if errors.Is(err, ErrCorrupt) {
					// Refuse the delta rather than overwrite what cannot
					// be read.
					res[owner].Refused = append(res[owner].Refused, Refusal{ID: d.ID, Err: err})
					continue
				}
				if err != nil {
					fatal = err
					continue
				}
				states[d.ID] = st
				order = append(order, d.ID)
			}
			// A delta for a session past its deadline is refused for good,
			// but the deadline is the later of the delta's and the stored
			// one: a tombstone whose issuer never saw a later deadline must
			// still destroy the session here.
			if deadline := max(d.Absolute, st.state.Absolute); it.now.UnixMilli() >= deadline {
				res[owner].Refused = append(res[owner].Refused, Refusal{ID: d.ID, Err: fmt.Errorf("%w: session %q deadline %s",
					crdt.ErrExpired, d.ID, time.UnixMilli(deadline).UTC().Format(time.RFC3339))})
				continue
			}
			// Cached states are shared with readers: merge into a copy.
			merged := st.state.Clone()
			ch, err := merged.Merge(d)
			if err != nil {
				res[owner].Refused = append(res[owner].Refused, Refusal{ID: d.ID, Err: err})
				continue
			}
			enc, err := crdt.MarshalSession(merged, s.opts.Limits)
			if err != nil {
				// Each delta was within the limits but the merge is not.
				res[owner].Refused = append(res[owner].Refused, Refusal{ID: d.ID, Err: fmt.Errorf("merged state: %w", err)})
				continue
			}
			st.state, st.enc, st.encHash = merged, enc, entryHash(enc)
			if !ch.Empty() {
				changes = append(changes, change{owner, ch})
			}
		}
	}
	var ws []write
	for _, id := range order {
		// Several deltas for one session in a group make one write.
		if st := states[id]; st.enc != nil && st.encHash != st.hash {
			ws = append(ws, write{id: id, enc: st.enc, oldDeadline: st.deadline, newDeadline: st.state.Absolute})
		}
	}
	var err error
	if len(ws) > 0 {
		err = s.be.commit(ws)
		if err != nil {
			err = fmt.Errorf("persist: apply: %w", err)
		} else if s.opts.Durability == DurabilityNone {
			s.dirty.Store(true)
		}
	}
	if err == nil {
		for _, w := range ws {
			st := states[w.id]
			s.digests.update(BucketOf(w.id), st.hash, st.encHash)
			s.cache.put(st.state, st.encHash)
		}
		for _, c := range changes {
			res[c.owner].Changes = append(res[c.owner].Changes, c.ch)
		}
	} else {
		// What was committed before the failure is unknown: let the next
		// commit read it back.
		for _, w := range ws {
			s.cache.remove(w.id)
		}
	}
	if err == nil {
		err = fatal
	}
	for i, r := range group {
		r.done <- commitRes{res: res[i], err: err}
	}
}

// base returns the committed state of id for a merge: from the cache when
// there, else from the backend.
func (s *Store) base(id string) (*staged, error) {
	if e, ok := s.cache.entry(id); ok {
		return &staged{state: e.s, hash: e.hash, deadline: e.s.Absolute}, nil
	}
	raw, cur, err := s.read(id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return &staged{state: &crdt.Session{ID: id}}, nil
	}
	return &staged{state: cur, hash: entryHash(raw), deadline: cur.Absolute}, nil
}

// syncLoop bounds how long writes stay unsynced in DurabilityNone: every
// SyncInterval, if anything was committed since, one fsync.
func (s *Store) syncLoop() {
	s.every(s.opts.SyncInterval, func() bool {
		if s.dirty.Swap(false) {
			if err := s.be.sync(); err != nil {
				s.log.Error("fsync failed", "err", err)
			}
		}
		return true
	})
}
