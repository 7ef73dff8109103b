package node

import (
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// OpKind is a local operation.
type OpKind uint8

// Local operations, as Node's methods run them.
const (
	OpCreate OpKind = iota + 1
	OpUpdate
	OpTouch
	OpDestroy
	OpRenew
	// OpSave is Update that may also set the idle timeout and record an
	// access (Node.Save).
	OpSave
	// OpBuild writes the deltas Build makes with timestamps the Core
	// issues: the node's owner records and revocations use it.
	OpBuild
)

var opKindNames = [...]string{OpCreate: "create", OpUpdate: "update", OpTouch: "touch", OpDestroy: "destroy",
	OpRenew: "renew", OpSave: "save", OpBuild: "build"}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// LocalOp is a local operation on one session, as it enters the Core.
type LocalOp struct {
	Kind OpKind
	ID   string
	// Stored is the session as the store held it when the caller read it
	// (nil when absent): the Core checks the operation against it
	// (visibility with local touches, existence, field bounds). Reads stay
	// outside the Core's lock; a write racing this one merges with it as
	// any concurrent write does.
	Stored *crdt.Session
	// Create and Update.
	Set    map[string][]byte
	Remove []string
	// Create.
	Idle, Lifetime time.Duration
	// Create: the id came from the caller (WithToken): refuse it when this
	// peer holds any state for it.
	Chosen bool
	// Renew: the new session's id.
	NewID string
	// Save: set the idle timeout to IdleTimeout (when positive, up or
	// down) and record an access (Touch).
	IdleTimeout time.Duration
	Touch       bool
	// Versioned, on a Save, says the caller carries a version
	// (WithVersion): the delta then stamps the session's version, as an
	// Update's (change-only and guarded, or the whole state: Local says
	// when). Otherwise a Save sends only what it changes (the Redis
	// front's writes, a hash of many fields) and leaves the version alone,
	// which keeps the Redis front's sessions free of version entries.
	Versioned bool
	// Extra, when set, may add to the deltas of a create or a renewal
	// before they are written (the node's owner index).
	Extra func(ds []*crdt.Session, ts crdt.Timestamp) []*crdt.Session
	// Build makes the deltas of OpBuild; stamp issues timestamps.
	Build func(stamp func() crdt.Timestamp) ([]*crdt.Session, error)
}

// Local decides a local operation at now: it checks it against the stored
// state, stamps it and returns a ticket whose Ack comes out of a later
// Ready, once the write the Core hands out in Storage is durable (as the
// store's durability says). A lazy touch (one that moves last access by less
// than TouchFraction of the idle timeout) stays on this peer: no write, no
// ticket (0). An operation the Core refuses returns its error and no
// ticket. Node's Create, Update, Touch, Destroy and Renew all come here,
// and so does the simulator's workload.
func (c *Core) Local(now time.Time, op LocalOp) (uint64, error) {
	var ds, wire []*crdt.Session
	if op.Kind == OpCreate {
		if op.Idle <= 0 || op.Lifetime <= 0 {
			return 0, fmt.Errorf("%w: idle timeout and lifetime must be positive", ErrInvalid)
		}
		if op.Chosen && op.Stored != nil {
			if op.Stored.IsDestroyed() {
				return 0, ErrDestroyed
			}
			return 0, ErrExists
		}
		ts := c.clock.Now(now)
		d := crdt.Create(op.ID, ts, now.Add(op.Lifetime), op.Idle)
		d.Guard = &crdt.Guard{} // the whole state: covered wherever it merges
		if err := c.addFields(d, d, op.Set, nil, ts, true); err != nil {
			return 0, err
		}
		ds = []*crdt.Session{d}
		if op.Extra != nil {
			ds = op.Extra(ds, ts)
		}
	} else if op.Kind == OpBuild {
		var err error
		if ds, err = op.Build(func() crdt.Timestamp { return c.clock.Now(now) }); err != nil {
			return 0, err
		}
	} else {
		s := op.Stored
		la, ok := c.Visible(s, now)
		if !ok {
			return 0, ErrNotFound
		}
		// The write is made on s: its stamps must follow everything in
		// s. The Core observes a peer's stamps when the store's result
		// comes back (applied), but the store shows the merged state as
		// soon as it commits, so a write based on it could be stamped
		// before a stamp of that state and lose to it, at its own peer:
		// a versioned read-modify-write lost an increment (seen once in
		// CI, TestHTTPAlternatingCounterWithVersion). s was admitted, so
		// it is within the drift bound.
		_ = c.clock.Observe(s.MaxTimestamp(), now)
		switch op.Kind {
		case OpUpdate, OpSave:
			ts := c.clock.Now(now)
			// A versioned write stamps the writer's entry, which stands
			// for everything the writer holds (crdt.Version). From a
			// state this peer knows covered (crdt.Session.Covered) the
			// delta carries only what changed, guarded by the version it
			// was written on; otherwise it carries the whole state under
			// an empty guard, which makes the state covered here and on
			// the peers that merge it. An unversioned Save (the Redis
			// front's writes) sends what it changes and no entry.
			versioned := op.Kind == OpUpdate || op.Versioned
			var d *crdt.Session
			whole := false
			switch {
			case !versioned:
				d = s.Header()
			case s.Covered() && c.HoldsID(op.ID):
				// Change-only needs the store's own copy to cover the
				// guard, or the writer drops its own entry. A peer that
				// does not hold the session (partial replication) writes
				// from the holders' answers, not from its copy, and then
				// hands its copy off and drops it: only a whole state
				// keeps the entry there.
				d = s.Header()
				d.Guard = &crdt.Guard{Need: s.Version()}
			default:
				d, whole = s.Clone(), true
				d.Guard = &crdt.Guard{}
				c.m.Add("whole_state_writes", 1)
			}
			if op.Kind == OpSave && op.IdleTimeout > 0 {
				d.Idle, d.IdleTS = op.IdleTimeout.Milliseconds(), ts
			}
			if op.Kind == OpSave && op.Touch {
				d.LastAccess = max(d.LastAccess, now.UnixMilli())
			}
			if err := c.addFields(s, d, op.Set, op.Remove, ts, versioned); err != nil {
				return 0, err
			}
			ds = []*crdt.Session{d}
			if err := c.checkHandedSize(s, d); err != nil {
				return 0, err
			}
			if whole && approxSize(d) > wholeStateBytes {
				// A large session: store the whole state with its
				// version entry (which makes it covered here, so the
				// next write is change-only), but broadcast only what
				// changed and no entry. Peers then learn the entry only
				// with a whole state: anti-entropy, a versioned reader's
				// fetch, or the gap fetch the next write's guard, which
				// asks for this entry, makes them send (repairGap).
				w := s.Header()
				if op.Kind == OpSave {
					w.Idle, w.IdleTS, w.LastAccess = d.Idle, d.IdleTS, d.LastAccess
				}
				_ = c.addFields(s, w, op.Set, op.Remove, ts, false)
				wire = []*crdt.Session{w}
			}
		case OpTouch:
			ms := now.UnixMilli()
			if float64(ms-s.LastAccess) < c.cfg.TouchFraction*float64(s.Idle) {
				if ms > la {
					c.touches.record(s.ID, ms, min(s.Absolute, ms+s.Idle))
				}
				return 0, nil
			}
			ds = []*crdt.Session{s.Touch(now)}
		case OpDestroy:
			ds = []*crdt.Session{s.Destroy(c.clock.Now(now))}
		case OpRenew:
			ts := c.clock.Now(now)
			d := crdt.Create(op.NewID, ts, time.UnixMilli(s.Absolute), time.Duration(s.Idle)*time.Millisecond)
			for k, f := range s.Fields.All() {
				// The old session's version entries describe the old
				// session: the new one starts its own.
				if !f.Removed && !strings.HasPrefix(k, crdt.VersionKeyPrefix) {
					d.Fields = d.Fields.With(k, crdt.Field{Value: f.Value, TS: ts})
				}
			}
			vk, vf := crdt.VersionField(ts)
			d.Fields = d.Fields.With(vk, vf)
			d.Guard = &crdt.Guard{} // the whole new session
			ds = []*crdt.Session{d, s.Destroy(ts)}
			if op.Extra != nil {
				ds = op.Extra(ds, ts)
			}
		default:
			return 0, fmt.Errorf("%w: operation %v", ErrInvalid, op.Kind)
		}
	}
	tk := c.newTask()
	tk.local, tk.wire = ds, wire
	t := c.newTicket(tk)
	c.ready.Storage = append(c.ready.Storage, StorageOp{Ticket: t, Kind: StoreApply, Now: now, Batch: crdt.BatchOf(ds...), Local: true})
	return t, nil
}

// addFields adds writes to delta d of session s, within the field bound,
// and, when stamp is set, stamps d's version with ts. d is either the
// whole state s (a clone, or s itself on a create) under an empty guard, or
// a change-only delta guarded by s's version (Core.Local says which).
func (c *Core) addFields(s, d *crdt.Session, set map[string][]byte, remove []string, ts crdt.Timestamp, stamp bool) error {
	// Counted before merging: on a create s and d are the same session, so
	// the merges below grow s.Fields too. The node's own keys (version
	// entries, owner) do not count.
	had, fresh := s.Fields.Len()-s.Fields.CountPrefix(internalPrefix), 0
	var one [1]string
	keys := one[:0]
	if len(set) == 1 {
		for k := range set {
			keys = append(keys, k)
		}
	} else {
		// In order, so that an error names the same key every time.
		keys = slices.Sorted(maps.Keys(set))
	}
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: empty field key", ErrInvalid)
		}
		if strings.HasPrefix(k, internalPrefix) {
			return fmt.Errorf("%w: field key %q: keys starting with %q are the node's", ErrInvalid, k, internalPrefix)
		}
		if !s.Fields.Has(k) {
			fresh++
		}
		d.Fields = d.Fields.With(k, crdt.Field{Value: string(set[k]), TS: ts})
	}
	for _, k := range remove {
		if strings.HasPrefix(k, internalPrefix) {
			return fmt.Errorf("%w: field key %q: keys starting with %q are the node's", ErrInvalid, k, internalPrefix)
		}
		if s.Fields.Has(k) {
			d.Fields = d.Fields.With(k, crdt.Field{Removed: true, TS: ts})
		}
	}
	if had+fresh > c.cfg.MaxFields {
		return fmt.Errorf("%w: %d fields, limit %d", ErrTooManyFields, had+fresh, c.cfg.MaxFields)
	}
	if stamp {
		k, f := crdt.VersionField(ts)
		d.Fields = d.Fields.With(k, f)
	}
	return nil
}

// checkHandedSize refuses, on a peer that does not hold session s
// (partial replication), a write d that would take s over
// Limits.MaxSessionBytes. Such a peer stores only its own part of the
// session, which its store's bound does not see whole; the holders, which
// do, would refuse the handed-off copy, and the write, acknowledged here,
// would be dropped with the copy. A holder's store refuses it itself.
func (c *Core) checkHandedSize(s, d *crdt.Session) error {
	if c.HoldsID(s.ID) {
		return nil
	}
	m := s.Clone()
	if _, err := m.Merge(d); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if n := crdt.EncodedSize(m); n > c.cfg.Limits.MaxSessionBytes {
		return fmt.Errorf("%w: %w: session %q would encode to %d bytes (max %d)", ErrInvalid, crdt.ErrTooLarge, s.ID, n, c.cfg.Limits.MaxSessionBytes)
	}
	return nil
}

// localDone finishes a local write once the store reported it: broadcast,
// changes, acknowledgement, in that order of effects.
func (c *Core) localDone(now time.Time, ticket uint64, ds, wire []*crdt.Session, res StorageResult) {
	ack := Ack{Ticket: ticket, Deltas: ds}
	switch {
	case res.Err != nil:
		ack.Err = fmt.Errorf("node: write: %w", res.Err)
	case len(res.Apply.Refused) > 0:
		ack.Err = fmt.Errorf("%w: %w", ErrInvalid, res.Apply.Refused[0].Err)
	case len(res.Apply.Deferred) > 0:
		// Our own stamps are never beyond the drift bound of our own clock
		// unless the clock stepped back by more than MaxDrift.
		ack.Err = fmt.Errorf("node: write: local clock behind its own timestamps: %w", crdt.ErrClockDrift)
	default:
		if wire == nil {
			wire = ds
		}
		c.LocalDelta(now, wire...)
		for _, ch := range res.Apply.Changes {
			if ch.Destroyed {
				c.touches.forget(ch.ID)
			}
			c.ready.Changes = append(c.ready.Changes, Change{Change: ch})
		}
	}
	c.ready.Acks = append(c.ready.Acks, ack)
}

// Visible reports whether a reader at now may see stored session s, and its
// last access counting this peer's lazy touches. Unlike the Core's other
// methods it is safe to call concurrently with them: reads do not take
// the runtime's lock.
func (c *Core) Visible(s *crdt.Session, now time.Time) (int64, bool) {
	if s == nil {
		return 0, false
	}
	la := c.touches.lastAccess(s.ID, s.LastAccess)
	if s.Created.IsZero() || s.IsDestroyed() || now.UnixMilli() >= min(s.Absolute, la+s.Idle) {
		c.touches.forget(s.ID)
		return 0, false
	}
	return la, true
}

// touchTable holds the lazy touches of a peer: last accesses not stored
// nor sent. Reads consult it without the Core's lock. It is split in
// shards by id, each with a count read without its lock, so that a read
// skips the lock of a shard that holds no touch and otherwise shares it
// with the other readers of about 1/64 of the sessions: a peer serving
// many reads and lazy touches has no lock that every read takes.
type touchTable struct {
	seed   maphash.Seed
	shards [touchShards]touchShard
}

const touchShards = 64

type touchShard struct {
	mu sync.RWMutex
	m  map[string]touchEntry
	n  atomic.Int64 // len(m), read without mu
	_  [24]byte     // one cache line a shard: readers of one do not slow another's
}

type touchEntry struct {
	at      int64 // Unix ms
	expires int64 // when the session expires even with this touch
}

func newTouchTable() *touchTable {
	t := &touchTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]touchEntry)
	}
	return t
}

func (t *touchTable) shard(id string) *touchShard {
	return &t.shards[maphash.String(t.seed, id)%touchShards]
}

func (t *touchTable) lastAccess(id string, stored int64) int64 {
	sh := t.shard(id)
	if sh.n.Load() == 0 {
		return stored
	}
	sh.mu.RLock()
	e, ok := sh.m[id]
	sh.mu.RUnlock()
	if !ok {
		return stored
	}
	if e.at <= stored {
		// A stored touch caught up with it: once, and a writer's work.
		sh.mu.Lock()
		if e, ok := sh.m[id]; ok && e.at <= stored {
			delete(sh.m, id)
			sh.n.Store(int64(len(sh.m)))
		}
		sh.mu.Unlock()
		return stored
	}
	return e.at
}

func (t *touchTable) record(id string, at, expires int64) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[id]; ok && e.at >= at {
		return
	}
	sh.m[id] = touchEntry{at: at, expires: expires}
	sh.n.Store(int64(len(sh.m)))
}

func (t *touchTable) forget(id string) {
	sh := t.shard(id)
	if sh.n.Load() == 0 {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[id]; ok {
		delete(sh.m, id)
		sh.n.Store(int64(len(sh.m)))
	}
}

// sweep drops the touches of sessions expired by now: a session touched
// and never read again must not hold an entry for ever.
func (t *touchTable) sweep(now int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.n.Load() == 0 {
			continue
		}
		sh.mu.Lock()
		for id, e := range sh.m {
			if now >= e.expires {
				delete(sh.m, id)
			}
		}
		sh.n.Store(int64(len(sh.m)))
		sh.mu.Unlock()
	}
}

func (t *touchTable) len() int {
	n := 0
	for i := range t.shards {
		n += int(t.shards[i].n.Load())
	}
	return n
}
