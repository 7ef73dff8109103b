package persist

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

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

// item is one admitted delta on its way into a commit, with the local time
// of the Apply call that brought it.
type item struct {
	d   *crdt.Session
	now time.Time
}

// Apply merges a batch of deltas into the store at local time now and
// returns what changed. Apply returns once the write is as durable as
// Options.Durability promises. A batch is committed atomically (one Badger
// transaction, which calls that arrive together may share, but never
// split) unless it is by itself too large for a transaction: then it is
// committed in several, and if a later one fails the error says so, while
// the earlier ones stay merged and Result reports them.
func (s *Store) Apply(b *crdt.Batch, now time.Time) (Result, error) {
	var res Result
	if b == nil || b.Len() == 0 {
		return res, nil
	}
	if !s.enter() {
		return res, ErrClosed
	}
	defer s.leave()
	if s.opts.Serial {
		return s.commit.applySerial(b, now)
	}
	items := s.admit(b, now, make([]item, 0, b.Len()), &res)
	if len(items) == 0 {
		return res, nil
	}
	out, err := s.commit.submit(items)
	res.Changes = out.Changes // only a commit changes anything
	res.Refused = append(res.Refused, out.Refused...)
	return res, err
}

// admit appends to items the deltas of b that may merge now, and records
// in res those refused for good or deferred.
func (s *Store) admit(b *crdt.Batch, now time.Time, items []item, res *Result) []item {
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
	return items
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

	scratch groupScratch // commitGroup's, under mu
	items   []item       // applySerial's, under mu
}

type commitReq struct {
	items []item
	// done carries the caller's result, or tells a waiting caller that it
	// leads now (commitRes.lead): the leader before it had its own result
	// and left. One channel for both: a second one cost an allocation per
	// Apply.
	done chan commitRes
}

type commitRes struct {
	res  Result
	err  error
	lead bool
}

// maxGroupItems bounds one group's transaction.
const maxGroupItems = 4096

// commitReqs keeps requests with their channels from one Apply to the
// next: a request is free again once its caller has its result, as
// nothing sends on its channel after that (the one result, or a hand-over
// before it, each received).
var commitReqs = sync.Pool{New: func() any { return &commitReq{done: make(chan commitRes, 1)} }}

func (c *committer) submit(items []item) (Result, error) {
	req := commitReqs.Get().(*commitReq)
	req.items = items
	defer func() {
		req.items = nil
		commitReqs.Put(req)
	}()
	c.qmu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.qmu.Unlock()
		// Either a leader committed ours, or it hands over: then ours is
		// still queued, and its result comes from this caller's own
		// group, once the hand-over has left the channel.
		if r := <-req.done; !r.lead {
			return r.res, r.err
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
			out := c.commitGroup(group)
			for i, r := range group {
				r.done <- out[i] // buffered: never blocks
			}
			c.mu.Unlock()
		}
		select {
		case r := <-req.done:
			// Hand over rather than serve the others for ever: a leader
			// under steady load would never return.
			c.qmu.Lock()
			if len(c.queue) > 0 {
				c.queue[0].done <- commitRes{lead: true}
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

// applySerial commits the deltas of one Apply call by themselves, in the
// caller (Options.Serial): the same commit as a group of one, without the
// queue, the channels and the hand-over, which cost a caller that never
// overlaps another more than the merge itself, and with the items in a
// buffer kept from call to call. Calls that do overlap still commit one at
// a time, under mu.
func (c *committer) applySerial(b *crdt.Batch, now time.Time) (Result, error) {
	var res Result
	c.mu.Lock()
	defer c.mu.Unlock()
	items := c.s.admit(b, now, c.items[:0], &res)
	defer func() {
		clear(items)
		c.items = items[:0]
	}()
	if len(items) == 0 {
		return res, nil
	}
	req := commitReq{items: items}
	out := c.commitGroup([]*commitReq{&req})
	res.Changes = out[0].res.Changes
	res.Refused = append(res.Refused, out[0].res.Refused...)
	return res, out[0].err
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

// staged is a session as a group leaves it.
type staged struct {
	id     string
	bucket int           // BucketOf(id), hashed once for the backend and digests
	stored *crdt.Session // as the backend holds it; nil when absent
	hash   uint64        // sessionHash(stored)
	// fieldHash is the XOR of the record hashes of the field registers the
	// group's merges replaced and of those they put in their place: what
	// the digest of a stored session changes by (write), computed as each
	// merge learns both registers rather than looked up again.
	fieldHash uint64
	// slot is where the cache keeps id: found by base, used to publish.
	slot cacheSlot
	// rec is the in-memory backend's record of id, from the cache entry
	// (cacheEntry.rec), nil when not known.
	rec   *memRecord
	state *crdt.Session // stored, or the group's own copy once a delta merged
	owned bool          // state is the group's copy
	// fresh says state is a blank in the group's scratch (groupScratch.
	// blanks): the session is new here, and its node is made once the
	// merges are done (publishable), with its registers in it.
	fresh  bool
	node   *cacheNode // holds state when owned and the store caches
	size   int        // crdt.EncodedSize(state)
	merged bool       // a delta merged
	fields []string   // keys whose register changed, each once
	landed bool       // written: its changes are reported
	// keys holds fields while they are few (most writes change a key or
	// two): no allocation for them.
	keys [2]string
}

// groupScratch is what commitGroup reuses from one group to the next (it
// runs under c.mu): most groups are one Apply call of a delta or a few, and
// their bookkeeping would otherwise be most of the commit's garbage.
type groupScratch struct {
	states  []staged
	index   map[string]int // into states, for groups too large to search
	ws      []write
	entries []cacheEntry
	wsOf    []int // the staged state of each of ws
	owners  []int // the request of each change
	changes []crdt.Change
	out     [1]commitRes
	// blanks holds the states of sessions new here while the group merges
	// into them; sized before the group's first merge, never grown during
	// it, as staged states point into it.
	blanks []crdt.Session

	// spareIndex is a previous group's index, emptied, for the next group
	// that needs one.
	spareIndex map[string]int
}

// indexFrom is the size from which a group finds its staged states through
// a map rather than by scanning them.
const indexFrom = 16

func (g *groupScratch) find(id string) (int, bool) {
	if g.index != nil {
		i, ok := g.index[id]
		return i, ok
	}
	for i := range g.states {
		if g.states[i].id == id {
			return i, true
		}
	}
	return 0, false
}

// blank returns a blank state of id in blanks, which has room for it.
func (g *groupScratch) blank(id string) *crdt.Session {
	g.blanks = append(g.blanks, crdt.Session{ID: id})
	return &g.blanks[len(g.blanks)-1]
}

func (g *groupScratch) add(st staged) int {
	g.states = append(g.states, st)
	i := len(g.states) - 1
	switch {
	case g.index != nil:
		g.index[st.id] = i
	case len(g.states) == indexFrom:
		g.index, g.spareIndex = g.spareIndex, nil
		if g.index == nil {
			g.index = make(map[string]int, 2*indexFrom)
		}
		for j := range g.states {
			g.index[g.states[j].id] = j
		}
	}
	return i
}

// reset forgets a group's sessions (so that the scratch does not keep
// them alive) and keeps the buffers, unless a rare large group grew them.
func (g *groupScratch) reset() {
	const keep = 256
	clear(g.states)
	clear(g.ws)
	clear(g.entries)
	clear(g.changes)
	clear(g.blanks)
	g.states, g.ws, g.entries, g.changes = g.states[:0], g.ws[:0], g.entries[:0], g.changes[:0]
	g.wsOf, g.owners, g.blanks = g.wsOf[:0], g.owners[:0], g.blanks[:0]
	if cap(g.states) > keep {
		g.states, g.ws, g.entries, g.changes, g.wsOf, g.owners = nil, nil, nil, nil, nil, nil
	}
	if cap(g.blanks) > keep {
		g.blanks = nil
	}
	if g.index != nil && len(g.index) <= keep {
		clear(g.index)
		g.spareIndex = g.index
	}
	g.index = nil
	g.out = [1]commitRes{}
}

// commitGroup merges the items of a group, commits what changed in one
// backend commit, then publishes the new states to the cache and digests,
// and returns each request's result, in group order. The caller holds c.mu.
// A group of one request returns a slice of c's scratch, valid until the
// next commit.
func (c *committer) commitGroup(group []*commitReq) []commitRes {
	s := c.s
	g := &c.scratch
	g.reset()
	var out []commitRes
	if len(group) == 1 {
		out = g.out[:]
	} else {
		out = make([]commitRes, len(group))
	}
	var fatal error
	refuse := func(owner int, id string, err error) {
		out[owner].res.Refused = append(out[owner].res.Refused, Refusal{ID: id, Err: err})
	}
	if s.cache != nil {
		// Room for a blank per item: base takes one for each session new
		// here, and states point into it.
		n := 0
		for _, r := range group {
			n += len(r.items)
		}
		if cap(g.blanks) < n {
			g.blanks = make([]crdt.Session, 0, n)
		}
	}
	for owner, r := range group {
		for _, it := range r.items {
			d := it.d
			i, ok := g.find(d.ID)
			if !ok {
				st, err := s.base(d.ID, g)
				if errors.Is(err, ErrCorrupt) {
					// Refuse the delta rather than overwrite what cannot
					// be read.
					refuse(owner, d.ID, err)
					continue
				}
				if err != nil {
					fatal = err
					continue
				}
				i = g.add(st)
			}
			st := &g.states[i]
			// A delta for a session past its deadline is refused for good,
			// but the deadline is the later of the delta's and the stored
			// one: a tombstone whose issuer never saw a later deadline must
			// still destroy the session here.
			if deadline := max(d.Absolute, st.state.Absolute); it.now.UnixMilli() >= deadline {
				refuse(owner, d.ID, fmt.Errorf("%w: session %q deadline %s",
					crdt.ErrExpired, d.ID, time.UnixMilli(deadline).UTC().Format(time.RFC3339)))
				continue
			}
			ch, err := s.merge(st, d)
			if err != nil {
				refuse(owner, d.ID, err)
				continue
			}
			if !ch.Empty() || ch.Dropped {
				g.owners = append(g.owners, owner)
				g.changes = append(g.changes, ch)
			}
		}
	}
	for i := range g.states {
		st := &g.states[i]
		w, h, ok := st.write()
		if ok && st.fresh {
			// Written: the state leaves the scratch for the node that
			// publishes it.
			st.node = makeNode(st.state)
			st.state, w.state = &st.node.s, &st.node.s
			st.fresh = false
		}
		if ok {
			g.ws = append(g.ws, w)
			g.wsOf = append(g.wsOf, i)
			g.entries = append(g.entries, cacheEntry{s: st.state, hash: h, size: st.size})
		}
	}
	ws := g.ws
	// What the backend wrote is published even if a later part of the
	// group failed: digests must describe the data, and callers learn
	// what changed.
	written, err := len(ws), error(nil)
	if len(ws) > 0 {
		if len(group) > 1 {
			written, err = s.be.commit(ws)
			if errors.Is(err, errTooBig) && written == 0 {
				// Cut between Apply calls, never inside one: the
				// deltas of one call (a renewal: a new session and the
				// old one's tombstone) commit together. Nothing was
				// written or published, so each half merges afresh.
				half := len(group) / 2
				// The halves share the scratch: keep the first's results.
				first := slices.Clone(c.commitGroup(group[:half]))
				return append(first, c.commitGroup(group[half:])...)
			}
		} else {
			written, err = s.commitWrites(ws)
		}
		if err != nil {
			err = fmt.Errorf("persist: apply: %w", err)
		}
		if written > 0 && s.opts.Durability == DurabilityNone {
			s.dirty.Store(true)
		}
	}
	for i := range ws[:written] {
		st := &g.states[g.wsOf[i]]
		g.entries[i].rec = ws[i].rec // what the backend wrote, for the next commit
		s.digests.update(st.bucket, st.hash, g.entries[i].hash)
		s.cache.putNodeAt(st.slot, g.entries[i], st.node)
		st.landed = true
	}
	for _, w := range ws[written:] {
		// Not written: the next commit reads the stored state back.
		s.cache.remove(w.id)
	}
	if len(group) == 1 && len(g.changes) > 1 {
		// Sized once: appending one by one grew it log2(n) times for a
		// remote batch of n sessions. The slice is the caller's.
		out[0].res.Changes = make([]crdt.Change, 0, len(g.changes))
	}
	for k, ch := range g.changes {
		// A guarded delta that merged nothing (Change.Dropped) wrote
		// nothing, and its caller still has to learn that it waits.
		if ch.Empty() {
			out[g.owners[k]].res.Changes = append(out[g.owners[k]].res.Changes, ch)
			continue
		}
		if i, _ := g.find(ch.ID); g.states[i].landed {
			out[g.owners[k]].res.Changes = append(out[g.owners[k]].res.Changes, ch)
		}
	}
	if err == nil {
		err = fatal
	}
	for i := range out {
		out[i].err = err
	}
	return out
}

// commitWrites commits ws in one backend transaction, or, when they are too
// big for one, in halves, and returns how many of ws (a prefix) are
// written: after a failure the earlier transactions stay written.
func (s *Store) commitWrites(ws []write) (int, error) {
	n, err := s.be.commit(ws)
	if errors.Is(err, errTooBig) && n == 0 && len(ws) > 1 {
		half := len(ws) / 2
		n, err := s.commitWrites(ws[:half])
		if err != nil {
			return n, err
		}
		m, err := s.commitWrites(ws[half:])
		return half + m, err
	}
	return n, err
}

// merge joins d into the group's copy of a session, within the limits: a
// delta that would take the merged state over them is refused and leaves
// the copy as it was.
func (s *Store) merge(st *staged, d *crdt.Session) (crdt.Change, error) {
	if !st.owned {
		s.own(st, st.state)
	}
	cur := st.state
	// Fields is persistent: before keeps the registers as they were.
	before := *cur
	fieldBytes := st.size - crdt.HeaderSize(cur, cur.Fields.Len())
	ch, err := cur.Merge(d)
	if err != nil {
		return ch, err
	}
	if ch.Dropped {
		// Nothing merged (a guarded delta waiting for its guard): nothing
		// to write, not even the blank state of a session absent here.
		return ch, nil
	}
	if cur.IsDestroyed() {
		st.size = crdt.HeaderSize(cur, 0)
	} else {
		// Each changed register, before and after, once: for the size and,
		// when the store holds the session live, the digest (write).
		hashed := st.stored != nil && !st.stored.IsDestroyed()
		fh := uint64(0)
		for _, k := range ch.Fields {
			if f, ok := before.Fields.Get(k); ok {
				fieldBytes -= crdt.FieldSize(k, f)
				if hashed {
					fh ^= fieldHash(st.id, k, f)
				}
			}
			f, _ := cur.Fields.Get(k)
			fieldBytes += crdt.FieldSize(k, f)
			if hashed {
				fh ^= fieldHash(st.id, k, f)
			}
		}
		size := crdt.HeaderSize(cur, cur.Fields.Len()) + fieldBytes
		var over error
		switch l := s.opts.Limits; {
		case cur.Fields.Len() > l.MaxFields:
			over = fmt.Errorf("merged state: %w: session %q would have %d fields (max %d)", crdt.ErrTooLarge, cur.ID, cur.Fields.Len(), l.MaxFields)
		case size > l.MaxSessionBytes:
			over = fmt.Errorf("merged state: %w: session %q would encode to %d bytes (max %d)", crdt.ErrTooLarge, cur.ID, size, l.MaxSessionBytes)
		}
		if over != nil {
			*cur = before
			return crdt.Change{}, over
		}
		st.size = size
		st.fieldHash ^= fh
	}
	st.merged = true
	if st.fields == nil {
		st.fields = st.keys[:0]
	}
	for _, k := range ch.Fields {
		if !slices.Contains(st.fields, k) { // a few keys per session and group
			st.fields = append(st.fields, k)
		}
	}
	return ch, nil
}

// write returns the backend write that brings the stored state to the
// group's, with the new hash, or false when nothing changed.
func (st *staged) write() (write, uint64, bool) {
	final, stored := st.state, st.stored
	if !st.merged {
		return write{}, 0, false
	}
	header := stored == nil || headerOf(stored) != headerOf(final)
	if !header && len(st.fields) == 0 {
		return write{}, 0, false
	}
	w := write{id: st.id, bucket: st.bucket, state: final, old: stored, header: header, newDeadline: final.Absolute, rec: st.rec}
	if stored != nil {
		w.oldDeadline = stored.Absolute
	}
	var h uint64
	switch {
	case final.IsDestroyed() || stored == nil || stored.IsDestroyed():
		h = sessionHash(final)
	default:
		// The registers a merge replaced and their replacements (merge
		// hashed both), and the header when it moved.
		h = st.hash ^ st.fieldHash
		if header {
			h ^= headerHash(st.id, headerOf(stored)) ^ headerHash(st.id, headerOf(final))
		}
	}
	if !final.IsDestroyed() {
		slices.Sort(st.fields)
		w.fields = st.fields
	}
	return w, h, true
}

// base returns the committed state of id for a merge: from the cache when
// there, else from the backend. A session absent from both merges into a
// blank of g (staged.fresh) when the store caches.
func (s *Store) base(id string, g *groupScratch) (staged, error) {
	e, slot, ok := s.cache.lookup(id)
	bucket := BucketOf(id)
	if !ok {
		cur, err := s.read(id)
		if err != nil {
			return staged{}, err
		}
		if cur == nil {
			st := staged{id: id, bucket: bucket, slot: slot, size: crdt.HeaderSize(&crdt.Session{ID: id}, 0)}
			if s.cache != nil {
				// Its node is made once it is written (commitGroup): a
				// node made now would be copied into one that holds its
				// registers, and a delta that merges nothing (a guarded
				// one) needs none.
				st.state, st.owned, st.fresh = g.blank(id), true, true
				return st, nil
			}
			s.own(&st, &crdt.Session{ID: id})
			return st, nil
		}
		e = newEntry(cur)
	}
	return staged{id: id, bucket: bucket, slot: slot, stored: e.s, hash: e.hash, state: e.s, size: e.size, rec: e.rec}, nil
}

// own gives st its own copy of s to merge into. When the store caches, the
// copy lives in the cache node that will publish it: one allocation for
// the merged state and its cache entry.
func (s *Store) own(st *staged, from *crdt.Session) {
	if s.cache == nil {
		st.state = from.Clone()
	} else {
		st.node = newOwnedNode(from)
		st.state = &st.node.s
	}
	st.owned = true
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
