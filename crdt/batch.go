package crdt

import (
	"slices"
	"strings"
)

// Batch is a set of session deltas joined by id. Joining deltas before
// sending them is what lets a sender carry many writes in one message;
// a Batch is itself a delta and merges like one. The zero Batch is empty and
// ready to use. A Batch is not safe for concurrent use.
type Batch struct {
	// one holds the only delta of a batch of one session (a local write),
	// which then needs no map.
	one *Session
	// ones is one as a slice, which Sessions returns without allocating.
	ones [1]*Session
	m    map[string]*Session // two sessions or more
	// sorted, when set, is m's sessions sorted by id (a decoded batch's
	// order), for Sessions; an added session unsets it.
	sorted []*Session
}

// NewBatch returns a batch holding the given deltas.
func NewBatch(deltas ...*Session) *Batch {
	b := &Batch{}
	for _, d := range deltas {
		b.Add(d)
	}
	return b
}

// BatchOf returns a batch holding the given deltas themselves, not copies
// (NewBatch copies): for a caller that made them and changes them no more.
// Deltas of one session are joined as NewBatch does, into a copy.
func BatchOf(deltas ...*Session) *Batch {
	if len(deltas) == 1 {
		d := deltas[0]
		b := &Batch{one: d}
		b.ones[0] = d
		return b
	}
	return NewBatch(deltas...)
}

// Add joins delta into the batch. The batch keeps its own copy, so d may be
// reused by the caller. Two deltas of one session join as joinDelta says:
// the result's version entries are taken only where both parts' would be.
func (b *Batch) Add(d *Session) {
	if b.m == nil {
		switch {
		case b.one == nil:
			b.one = d.Clone()
			b.ones[0] = b.one
			return
		case b.one.ID == d.ID:
			b.one.joinDelta(d)
			return
		}
		b.m = map[string]*Session{b.one.ID: b.one}
		b.one, b.ones[0] = nil, nil
	}
	if cur, ok := b.m[d.ID]; ok {
		cur.joinDelta(d)
		return
	}
	b.m[d.ID] = d.Clone()
	b.sorted = nil
}

// Join adds every delta of o into b.
func (b *Batch) Join(o *Batch) {
	if o.one != nil {
		b.Add(o.one)
	}
	for _, d := range o.m {
		b.Add(d)
	}
}

// Len returns the number of sessions in the batch.
func (b *Batch) Len() int {
	if b.one != nil {
		return 1
	}
	return len(b.m)
}

// Get returns the joined delta for id, or nil. The result is owned by the
// batch.
func (b *Batch) Get(id string) *Session {
	if b.one != nil {
		if b.one.ID == id {
			return b.one
		}
		return nil
	}
	return b.m[id]
}

// Sessions returns the deltas sorted by id. They are owned by the batch,
// and so is the slice of a batch of one (not to be modified).
func (b *Batch) Sessions() []*Session {
	if b.one != nil {
		return b.ones[:]
	}
	if b.sorted != nil {
		return b.sorted
	}
	out := make([]*Session, 0, len(b.m))
	for _, s := range b.m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y *Session) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Reset empties the batch.
func (b *Batch) Reset() {
	b.one, b.ones[0], b.sorted = nil, nil, nil
	clear(b.m)
}

// joinDelta joins delta d into delta s (both of one session) so that a
// replica merging the result takes no version entry that merging s and d
// one after the other would not let it take:
//
//   - both unguarded: the plain join;
//   - both guarded: guarded by the weaker of "s's guard, and what of d's
//     guard s's own entries do not meet" and the same with s and d
//     swapped (when neither is weaker, both): a replica meeting it takes
//     one part's entries and with them meets the other's guard. Two
//     successive writes of one writer thus join under the first one's
//     guard;
//   - one guarded, one not: unguarded, and the guarded part's entries are
//     left out unless its guard is empty (a whole state). Fields of the
//     unguarded part are backed by no entry, so the result cannot be a
//     guarded delta, whose fields all are.
//
// The join of deltas is commutative; it is not a lattice join of guards
// (a batch may need a stronger guard than its parts), which costs at most
// entries taken later, never a wrong one.
func (s *Session) joinDelta(d *Session) {
	if s.IsDestroyed() || d.IsDestroyed() {
		s.joinTombstone(d)
		return
	}
	switch {
	case s.Guard == nil && d.Guard == nil:
		s.join(d, d.Fields)
	case s.Guard != nil && d.Guard != nil:
		need := joinGuards(s.Guard.Need, s.Fields.version(), d.Guard.Need, d.Fields.version())
		s.join(d, d.Fields)
		s.Guard = &Guard{Need: need}
	default:
		if s.Guard != nil && len(s.Guard.Need) > 0 {
			s.Fields, _ = s.Fields.withoutVersion()
		}
		in := d.Fields
		if d.Guard != nil && len(d.Guard.Need) > 0 {
			in, _ = in.withoutVersion()
		}
		s.join(d, in)
		s.Guard = nil
	}
}

// joinGuards returns the guard of the join of a delta guarded by ga with
// entries ea and one guarded by gb with entries eb.
func joinGuards(ga, ea, gb, eb Version) Version {
	first := ga.Join(unmet(gb, ea))  // a, then b
	second := gb.Join(unmet(ga, eb)) // b, then a
	switch {
	case second.Covers(first):
		return first
	case first.Covers(second):
		return second
	}
	return first.Join(second)
}

// unmet returns the entries of need that have is below.
func unmet(need, have Version) Version {
	var out Version
	for _, e := range need {
		if have.Get(e.Node) < e.Time {
			out = append(out, e)
		}
	}
	return out
}
