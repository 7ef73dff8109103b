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
	m   map[string]*Session // two sessions or more
}

// NewBatch returns a batch holding the given deltas.
func NewBatch(deltas ...*Session) *Batch {
	b := &Batch{}
	for _, d := range deltas {
		b.Add(d)
	}
	return b
}

// Add joins delta into the batch. The batch keeps its own copy, so d may be
// reused by the caller.
func (b *Batch) Add(d *Session) {
	if b.m == nil {
		switch {
		case b.one == nil:
			b.one = d.Clone()
			return
		case b.one.ID == d.ID:
			_, _ = b.one.Merge(d) // same id: cannot fail
			return
		}
		b.m = map[string]*Session{b.one.ID: b.one}
		b.one = nil
	}
	if cur, ok := b.m[d.ID]; ok {
		_, _ = cur.Merge(d) // same id: cannot fail
		return
	}
	b.m[d.ID] = d.Clone()
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

// Sessions returns the deltas sorted by id. They are owned by the batch.
func (b *Batch) Sessions() []*Session {
	if b.one != nil {
		return []*Session{b.one}
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
	b.one = nil
	clear(b.m)
}
