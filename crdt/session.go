package crdt

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Field is one LWW register of a session: a value, or a removal, with the
// timestamp of the write that produced it. Value is a string so that it
// cannot change once written: versions of a session share it.
type Field struct {
	Value   string
	Removed bool
	TS      Timestamp
}

// Compare orders two writes of the same key: the later timestamp wins; on
// equal (physical, logical) parts a removal beats a value, then the higher
// node id wins, and byte order of the values settles the rest, so that the
// order is total even if two replicas shared a node id by mistake.
func (f Field) Compare(g Field) int {
	if c := cmp.Compare(f.TS.Time, g.TS.Time); c != 0 {
		return c
	}
	if f.Removed != g.Removed {
		if f.Removed {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(f.TS.Node, g.TS.Node); c != 0 {
		return c
	}
	return strings.Compare(f.Value, g.Value)
}

// Session is the replicated state of one login session, and also the shape of
// a delta: a delta is a Session holding only what a mutation changed, plus the
// session's header (Created, Absolute, Idle, LastAccess), so that any delta on
// its own tells a replica the session's deadline.
//
// Every component is joined independently: Created, Absolute, LastAccess and
// Destroyed by maximum, the idle timeout as a last-writer-wins register
// (Idle stamped by IdleTS, see SetIdle), each field by Field.Compare. Once
// Destroyed is set, a session keeps only ID, Absolute and Destroyed (a
// tombstone): the rest is dropped for good, which makes "destroyed" the top of
// the lattice for everything a reader can see.
//
// A Session returned by a store may be shared with other readers: treat it as
// read-only and Clone it before merging into it. Clone is cheap: Fields is
// persistent, so a clone shares the registers and a merge into it copies
// only what it changes.
type Session struct {
	ID string
	// Created is the HLC timestamp of the create. Zero in a tombstone made
	// for a session this replica never saw.
	Created Timestamp
	// Absolute is the absolute deadline, Unix milliseconds, fixed at create.
	Absolute int64
	// Idle is the idle timeout in milliseconds: a register that writes move
	// both ways (SetIdle), the later IdleTS winning.
	Idle int64
	// IdleTS is the timestamp of the write that set Idle: the create's, or
	// a later SetIdle's. It is zero only in sessions written by a build
	// that kept the idle timeout as a max-register (format 1): any stamped
	// write beats those, and among them the larger timeout wins, as it did.
	IdleTS Timestamp
	// LastAccess is a max-register of Unix milliseconds moved by Touch.
	LastAccess int64
	// Destroyed is the timestamp of the destroy; zero while live.
	Destroyed Timestamp
	// Fields maps keys to their registers; empty once destroyed.
	Fields Fields
	// Guard, on a delta, is the condition under which a replica takes the
	// delta's version entries (see Version). It is nil on a state, and on
	// a delta whose entries a replica takes unconditionally. It is never
	// stored: MarshalSession refuses it, MarshalBatch carries it.
	Guard *Guard

	// covered is this replica's knowledge that every field register of
	// the state is stood for by its version entries (Covered). Merge
	// keeps it; decoding, and therefore a restart, starts it false.
	covered bool
}

// Guard is the condition on a delta's version entries: a replica takes them
// only if its state's version covers Need, and otherwise merges the delta's
// fields alone. A Guard with an empty Need is met everywhere: the delta then
// carries its writer's whole state.
type Guard struct {
	Need Version
}

// Create returns a new session, which is also the delta that creates it. The
// session expires at absolute, or after idle without a Touch, whichever comes
// first.
func Create(id string, ts Timestamp, absolute time.Time, idle time.Duration) *Session {
	return &Session{
		ID:         id,
		Created:    ts,
		Absolute:   absolute.UnixMilli(),
		Idle:       idle.Milliseconds(),
		IdleTS:     ts,
		LastAccess: ts.Millis(),
	}
}

// Tombstone returns the delta that destroys a session this replica holds no
// state for. deadline bounds how long the tombstone must be kept; it should
// be no earlier than the session's absolute deadline.
func Tombstone(id string, ts Timestamp, deadline time.Time) *Session {
	return &Session{ID: id, Absolute: deadline.UnixMilli(), Destroyed: ts}
}

// Header returns a delta carrying only s's header (create stamp, deadline,
// idle timeout, last access): the base that field writes of one delta are
// merged into.
func (s *Session) Header() *Session {
	return &Session{ID: s.ID, Created: s.Created, Absolute: s.Absolute, Idle: s.Idle, IdleTS: s.IdleTS, LastAccess: s.LastAccess}
}

// SetIdle returns the delta that sets the idle timeout to idle at ts, up or
// down: the idle timeout is a last-writer-wins register, so of two
// concurrent SetIdle the one with the later timestamp holds on every
// replica. It does not record an access (merge it with a Touch for Redis's
// EXPIRE, which restarts the window) and does not modify s. The session
// still ends at its absolute deadline whatever the idle timeout.
func (s *Session) SetIdle(idle time.Duration, ts Timestamp) *Session {
	d := s.Header()
	d.Idle, d.IdleTS = idle.Milliseconds(), ts
	return d
}

// compareIdle orders two writes of the idle timeout register: the later
// stamp wins, then (only unstamped format-1 values, or a replica sharing a
// node id by mistake, tie) the larger timeout.
func compareIdle(a, b *Session) int {
	if c := a.IdleTS.Compare(b.IdleTS); c != 0 {
		return c
	}
	return cmp.Compare(a.Idle, b.Idle)
}

// Set returns the delta that writes key = value at ts. It does not modify s
// and keeps a copy of value.
func (s *Session) Set(key string, value []byte, ts Timestamp) *Session {
	return s.SetString(key, string(value), ts)
}

// SetString is Set for a value held as a string, which it shares.
func (s *Session) SetString(key, value string, ts Timestamp) *Session {
	d := s.Header()
	d.Fields = d.Fields.With(key, Field{Value: value, TS: ts})
	return d
}

// Remove returns the delta that removes key at ts. It does not modify s.
func (s *Session) Remove(key string, ts Timestamp) *Session {
	d := s.Header()
	d.Fields = d.Fields.With(key, Field{Removed: true, TS: ts})
	return d
}

// Touch returns the delta that records an access at time at. LastAccess only
// moves forward, so an older touch merges as a no-op. It does not modify s.
func (s *Session) Touch(at time.Time) *Session {
	d := s.Header()
	d.LastAccess = max(d.LastAccess, at.UnixMilli())
	return d
}

// Destroy returns the delta that destroys s at ts. No later write to the same
// id, whatever its timestamp, makes the session visible again. It does not
// modify s.
func (s *Session) Destroy(ts Timestamp) *Session {
	return &Session{ID: s.ID, Absolute: s.Absolute, Destroyed: ts}
}

// Clone returns a copy of s that can be merged into without affecting s.
// It copies the header only: the registers are shared, and a merge into
// the copy makes new versions of what it changes.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}

// Equal reports whether s and o hold the same state, and, on deltas, the
// same guard. Covered, which is local knowledge, does not count.
func (s *Session) Equal(o *Session) bool {
	return s.ID == o.ID && s.Created == o.Created && s.Absolute == o.Absolute && s.Idle == o.Idle && s.IdleTS == o.IdleTS &&
		s.LastAccess == o.LastAccess && s.Destroyed == o.Destroyed && s.Fields.Equal(o.Fields) &&
		(s.Guard == nil) == (o.Guard == nil) && (s.Guard == nil || s.Guard.Need.Equal(o.Guard.Need))
}

// Covered reports whether this replica knows that every field register of
// the state s is stood for by s's version entries: any replica whose
// version covers s.Version() holds every register of s, or a later one.
// Only a guarded delta that met its guard and carried all of s (a whole
// state) makes a state covered; a merge that changes a register without
// taking a version entry for it makes it uncovered (Change.Unbacked). A
// decoded state is not known covered. A writer may send a change-only
// guarded delta (see Version) only from a covered state.
func (s *Session) Covered() bool { return s.covered }

// IsDestroyed reports whether the session has been destroyed.
func (s *Session) IsDestroyed() bool { return !s.Destroyed.IsZero() }

// ExpiresAt returns the moment the session stops being visible:
// min(absolute deadline, last access + idle timeout).
func (s *Session) ExpiresAt() time.Time {
	return time.UnixMilli(s.expiresAtMillis())
}

func (s *Session) expiresAtMillis() int64 {
	return min(s.Absolute, s.LastAccess+s.Idle)
}

// Expired reports whether the session is expired at now.
func (s *Session) Expired(now time.Time) bool {
	return now.UnixMilli() >= s.expiresAtMillis()
}

// Visible reports whether a reader may see the session at now: it has been
// created, not destroyed, and has not expired.
func (s *Session) Visible(now time.Time) bool {
	return !s.Created.IsZero() && s.Destroyed.IsZero() && !s.Expired(now)
}

// Get returns the value of key, if it is set. The string shares the
// session's memory; it never changes.
func (s *Session) Get(key string) (string, bool) {
	return s.Fields.value(key)
}

// Keys returns the keys that hold a value, sorted.
func (s *Session) Keys() []string {
	keys := make([]string, 0, s.Fields.Len())
	for k := range s.Fields.Values() {
		keys = append(keys, k)
	}
	return keys
}

// Change reports what a merge altered. The zero Change means nothing did.
type Change struct {
	ID string
	// Created is set when the merge brought the session's create.
	Created bool
	// Destroyed is set when the merge destroyed a session that was live here.
	Destroyed bool
	// Touched is set when LastAccess moved forward.
	Touched bool
	// Extended is set when Absolute grew (only concurrent creates of one id
	// do that).
	Extended bool
	// Retimed is set when the idle timeout register took d's value (a
	// SetIdle, or a concurrent create): the expiry may have moved either
	// way.
	Retimed bool
	// Fields lists, sorted, the keys whose register changed.
	Fields []string
	// Dropped is set when the delta was guarded and this state did not
	// meet its guard: nothing of it merged (the change is otherwise
	// empty); the caller keeps it for when the state has what the guard
	// asks, or a whole state (anti-entropy, a fetch) brings it.
	Dropped bool
	// Unbacked is set when the merge changed a field register without
	// taking a version entry that stands for it: an unguarded delta or
	// state (anti-entropy, a fetch, an unversioned write), or a guarded
	// delta whose guard failed. The state is then no longer Covered.
	Unbacked bool
}

// Empty reports whether the merge changed nothing.
func (c Change) Empty() bool {
	return !c.Created && !c.Destroyed && !c.Touched && !c.Extended && !c.Retimed && len(c.Fields) == 0
}

// Merge joins d into s in place and reports what changed. On states
// (deltas without a Guard) Merge is commutative, associative and
// idempotent. A guarded delta d merges whole when s's version covers its
// guard; otherwise nothing of it merges (Change.Dropped), which leaves s
// below the join but never showing a register its version does not
// promise (see Version). s is a state: its own Guard is
// neither read nor changed (deltas join with Batch). d is not modified,
// but s may share field values with it afterwards. Merging sessions with
// different ids fails with ErrIDMismatch.
func (s *Session) Merge(d *Session) (Change, error) {
	if s.ID != d.ID {
		return Change{}, fmt.Errorf("%w: %q into %q", ErrIDMismatch, d.ID, s.ID)
	}
	if !d.Destroyed.IsZero() || !s.Destroyed.IsZero() {
		return s.joinTombstone(d), nil
	}
	in, backed := d.Fields, false
	if d.Guard != nil {
		if !s.Fields.versionCovers(d.Guard.Need) {
			// Nothing merges: registers taken without the entry that
			// stands for them would show a reader here what a peer whose
			// version covers this one may lack (monotonic reads). The
			// delta waits for what its guard asks (the node parks it).
			return Change{ID: s.ID, Dropped: true}, nil
		}
		backed = true
	}
	if backed && !s.covered {
		// A whole state that meets its guard leaves nothing here that
		// its entries do not stand for.
		s.covered = d.Fields.dominates(s.Fields)
	}
	ch := s.join(d, in)
	if !backed && unversioned(ch.Fields) {
		ch.Unbacked = true
		s.covered = false
	}
	return ch, nil
}

// joinTombstone joins d into s when either is destroyed. A tombstone keeps
// only what bounds its life: everything else is projected away, so it is
// the same on every replica that has it.
func (s *Session) joinTombstone(d *Session) Change {
	wasLive := s.Destroyed.IsZero()
	*s = Session{ID: s.ID, Absolute: max(s.Absolute, d.Absolute), Destroyed: maxTimestamp(s.Destroyed, d.Destroyed)}
	return Change{ID: s.ID, Destroyed: wasLive}
}

// join joins the header of live d and the registers in into live s.
func (s *Session) join(d *Session, in Fields) Change {
	ch := Change{ID: s.ID}
	if s.Created.IsZero() && !d.Created.IsZero() {
		ch.Created = true
	}
	s.Created = maxTimestamp(s.Created, d.Created)
	if d.Absolute > s.Absolute {
		ch.Extended = s.Absolute != 0
		s.Absolute = d.Absolute
	}
	if compareIdle(d, s) > 0 {
		ch.Retimed = s.Idle != 0 || !s.IdleTS.IsZero()
		s.Idle, s.IdleTS = d.Idle, d.IdleTS
	}
	if d.LastAccess > s.LastAccess {
		ch.Touched = true
		s.LastAccess = d.LastAccess
	}
	before := s.Fields
	s.Fields, ch.Fields = s.Fields.Join(in)
	if arrivalTieBreak() {
		s.Fields = plantArrival(before, in, s.Fields)
	}
	return ch
}

// unversioned reports whether keys holds a key that is not a version entry.
func unversioned(keys []string) bool {
	for _, k := range keys {
		if !strings.HasPrefix(k, VersionKeyPrefix) {
			return true
		}
	}
	return false
}

// MaxMillis returns the latest physical time any part of s claims: its
// timestamps and its last access. Admission compares it with the drift bound.
func (s *Session) MaxMillis() int64 {
	return max(s.Created.Millis(), s.Destroyed.Millis(), s.IdleTS.Millis(), s.LastAccess, s.Fields.maxStamp().Millis())
}

// MaxTimestamp returns the greatest HLC timestamp in s, for Clock.Observe.
func (s *Session) MaxTimestamp() Timestamp {
	return maxTimestamp(maxTimestamp(maxTimestamp(s.Created, s.Destroyed), s.IdleTS), s.Fields.maxStamp())
}

// Admit decides whether a replica whose physical time is now may merge the
// delta d. It returns an error wrapping ErrClockDrift when d carries a time
// more than maxDrift ahead of now (defer it, it becomes admissible later),
// and ErrExpired when d's session is past its absolute deadline (refuse it
// for good: it can never become visible, and its tombstone may already have
// been collected here).
func Admit(d *Session, now time.Time, maxDrift time.Duration) error {
	if err := CheckDrift(d.MaxMillis(), now, maxDrift); err != nil {
		return fmt.Errorf("session %q: %w", d.ID, err)
	}
	if now.UnixMilli() >= d.Absolute {
		return fmt.Errorf("%w: session %q deadline %s", ErrExpired, d.ID,
			time.UnixMilli(d.Absolute).UTC().Format(time.RFC3339))
	}
	return nil
}

// Collectable reports whether a replica may forget s entirely at now: its
// absolute deadline plus maxDrift has passed, so every copy anywhere is
// expired and every delta for it is refused by Admit. Tombstones are kept
// until then, which is what makes Destroy final.
func (s *Session) Collectable(now time.Time, maxDrift time.Duration) bool {
	return now.UnixMilli() >= s.Absolute+maxDrift.Milliseconds()
}
