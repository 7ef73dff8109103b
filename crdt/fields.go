package crdt

import (
	"fmt"
	"iter"
	"maps"
	"math/bits"
	"slices"
	"strings"
)

// Fields holds a session's field registers: a map from keys to Field that
// is never modified once built. With and Join return a new version and
// leave the receiver as it was, sharing what did not change, so a reader
// holding one version needs no lock and no copy while a writer makes the
// next, and a write costs in proportion to what it changes rather than to
// the session's size. The zero Fields is empty and ready to use.
//
// A version is a sorted base and a small sorted overlay of the keys written
// since the base was built, whose entries shadow the base's. A write copies
// the overlay only; once the overlay outgrows about the square root of the
// base (at least 8 entries), the next write merges both into a new base, so
// a write costs O(√n) amortized for a session of n fields. A session read
// from storage is one base whose keys and values share one allocation.
type Fields struct {
	base []entry // sorted by key; never modified once built
	over []entry // sorted by key; never modified once built; shadows base
	n    int     // distinct keys
}

type entry struct {
	key string
	f   Field
}

// Len returns the number of keys, removed ones included.
func (fs Fields) Len() int { return fs.n }

// Get returns the register of key, removed or not.
func (fs Fields) Get(key string) (Field, bool) {
	if i, ok := search(fs.over, key); ok {
		return fs.over[i].f, true
	}
	if i, ok := search(fs.base, key); ok {
		return fs.base[i].f, true
	}
	return Field{}, false
}

// Has reports whether key has a register, removed or not.
func (fs Fields) Has(key string) bool {
	_, ok := fs.Get(key)
	return ok
}

// All yields every key and its register, removed ones included, in
// ascending key order.
func (fs Fields) All() iter.Seq2[string, Field] {
	return func(yield func(string, Field) bool) {
		fs.each(func(e entry) bool { return yield(e.key, e.f) })
	}
}

// each calls fn with the entries in key order until it returns false.
func (fs Fields) each(fn func(entry) bool) {
	c := cursor{fs.base, fs.over}
	for e, ok := c.next(); ok; e, ok = c.next() {
		if !fn(e) {
			return
		}
	}
}

// cursor walks a Fields in key order, overlay entries shadowing base ones.
type cursor struct{ b, o []entry }

func (c *cursor) next() (entry, bool) {
	var e entry
	switch {
	case len(c.b) == 0 && len(c.o) == 0:
		return e, false
	case len(c.o) == 0 || (len(c.b) > 0 && c.b[0].key < c.o[0].key):
		e, c.b = c.b[0], c.b[1:]
	case len(c.b) > 0 && c.b[0].key == c.o[0].key:
		e, c.b, c.o = c.o[0], c.b[1:], c.o[1:]
	default:
		e, c.o = c.o[0], c.o[1:]
	}
	return e, true
}

// With returns fs with key's register set to f, whatever it held.
func (fs Fields) With(key string, f Field) Fields {
	i, found := search(fs.over, key)
	over := make([]entry, 0, len(fs.over)+1)
	over = append(over, fs.over[:i]...)
	over = append(over, entry{key, f})
	if found {
		over = append(over, fs.over[i+1:]...)
	} else {
		over = append(over, fs.over[i:]...)
	}
	out := Fields{base: fs.base, over: over, n: fs.n}
	if !found {
		if _, inBase := search(fs.base, key); !inBase {
			out.n++
		}
	}
	if len(out.base) == 0 {
		out.base, out.over = out.over, nil
	} else if len(out.over) > overLimit(len(out.base)) {
		out = out.compact()
	}
	return out
}

// overLimit is how many entries the overlay of a base of n entries holds
// before a write merges both: about √n, at least 8.
func overLimit(n int) int {
	return max(8, 1<<((bits.Len(uint(n))+1)/2))
}

// compact returns fs as a single base.
func (fs Fields) compact() Fields {
	if len(fs.over) == 0 {
		return fs
	}
	base := make([]entry, 0, fs.n)
	fs.each(func(e entry) bool { base = append(base, e); return true })
	return Fields{base: base, n: fs.n}
}

// Join returns the per-key join of fs and o, the greater register under
// Field.Compare winning, and the keys whose register in fs changed, sorted.
func (fs Fields) Join(o Fields) (Fields, []string) {
	switch {
	case o.n == 0:
		return fs, nil
	case fs.n == 0:
		keys := make([]string, 0, o.n)
		o.each(func(e entry) bool { keys = append(keys, e.key); return true })
		return o, keys
	}
	// Find what changes first: a delta carrying a whole state mostly holds
	// registers fs already has, and the few it changes are cheap to write
	// through the overlay.
	var buf [8]entry
	wins := buf[:0]
	c := cursor{o.base, o.over}
	for e, ok := c.next(); ok; e, ok = c.next() {
		if cur, ok := fs.Get(e.key); !ok || e.f.Compare(cur) > 0 {
			wins = append(wins, e)
		}
	}
	if len(wins) == 0 {
		return fs, nil
	}
	changed := make([]string, 0, len(wins))
	if len(wins) <= 4 || len(fs.over)+len(wins) <= overLimit(len(fs.base)) {
		out := fs
		for _, e := range wins {
			out = out.With(e.key, e.f)
			changed = append(changed, e.key)
		}
		return out, changed
	}
	// Many keys: one pass over both, in key order.
	a, b := fs.compact().base, o.compact().base
	base := make([]entry, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].key < b[0].key):
			base, a = append(base, a[0]), a[1:]
		case len(a) == 0 || b[0].key < a[0].key:
			base, b = append(base, b[0]), b[1:]
			changed = append(changed, base[len(base)-1].key)
		default:
			if b[0].f.Compare(a[0].f) > 0 {
				base = append(base, b[0])
				changed = append(changed, b[0].key)
			} else {
				base = append(base, a[0])
			}
			a, b = a[1:], b[1:]
		}
	}
	if len(changed) == 0 {
		return fs, nil
	}
	return Fields{base: base, n: len(base)}, changed
}

// Equal reports whether fs and o hold the same registers.
func (fs Fields) Equal(o Fields) bool {
	if fs.n != o.n {
		return false
	}
	eq := true
	fs.each(func(e entry) bool {
		g, ok := o.Get(e.key)
		eq = ok && g == e.f
		return eq
	})
	return eq
}

// FieldsOf returns the registers of m.
func FieldsOf(m map[string]Field) Fields {
	var b FieldsBuilder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.Add(k, m[k])
	}
	fs, _ := b.Build() // sorted keys: cannot fail
	return fs
}

// search finds key in sorted es: its index, or where it would go.
func search(es []entry, key string) (int, bool) {
	// Linear for the short slices most sessions have: no calls, and the
	// keys compared are in cache.
	if len(es) <= 8 {
		for i := range es {
			if c := strings.Compare(es[i].key, key); c >= 0 {
				return i, c == 0
			}
		}
		return len(es), false
	}
	return slices.BinarySearchFunc(es, key, func(e entry, k string) int { return strings.Compare(e.key, k) })
}

// FieldsBuilder builds a Fields from registers given in ascending key
// order, storing every key and value in one allocation: the compact form
// decoders use. The zero FieldsBuilder is ready to use.
type FieldsBuilder struct {
	arena   []byte
	pending []pendingEntry
}

type pendingEntry struct {
	key, val [2]int // offsets in arena
	removed  bool
	ts       Timestamp
	literal  bool // the entry is lit, not in arena
	lit      entry
}

// Grow makes room for n more bytes of keys and values and fields more
// registers.
func (b *FieldsBuilder) Grow(bytes, fields int) {
	b.arena = slices.Grow(b.arena, bytes)
	b.pending = slices.Grow(b.pending, fields)
}

// Add appends key = f, sharing f's value. Keys must come in strictly
// ascending order.
func (b *FieldsBuilder) Add(key string, f Field) {
	b.pending = append(b.pending, pendingEntry{literal: true, lit: entry{key, f}})
}

// AddBytes appends a register whose key and value are copied from the
// given bytes into the builder's single allocation; value is ignored for a
// removal. Keys must come in strictly ascending order.
func (b *FieldsBuilder) AddBytes(key, value []byte, removed bool, ts Timestamp) {
	p := pendingEntry{removed: removed, ts: ts}
	p.key = [2]int{len(b.arena), len(b.arena) + len(key)}
	b.arena = append(b.arena, key...)
	if !removed {
		p.val = [2]int{len(b.arena), len(b.arena) + len(value)}
		b.arena = append(b.arena, value...)
	}
	b.pending = append(b.pending, p)
}

// Reset discards the registers added, keeping the space for reuse.
func (b *FieldsBuilder) Reset() { b.arena, b.pending = b.arena[:0], b.pending[:0] }

// Len returns the number of registers added.
func (b *FieldsBuilder) Len() int { return len(b.pending) }

// Build returns the registers added and resets the builder. It fails with
// ErrMalformed if the keys were not added in strictly ascending order.
func (b *FieldsBuilder) Build() (Fields, error) {
	defer b.Reset()
	if len(b.pending) == 0 {
		return Fields{}, nil
	}
	// One allocation for every key and value: keys first, so that a
	// lookup's comparisons read a line or two, then values.
	size := 0
	for _, p := range b.pending {
		if !p.literal {
			size += p.key[1] - p.key[0] + p.val[1] - p.val[0]
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, p := range b.pending {
		if !p.literal {
			sb.Write(b.arena[p.key[0]:p.key[1]])
		}
	}
	for _, p := range b.pending {
		if !p.literal {
			sb.Write(b.arena[p.val[0]:p.val[1]])
		}
	}
	arena := sb.String()
	base := make([]entry, len(b.pending))
	koff, voff := 0, 0
	for _, p := range b.pending {
		if !p.literal {
			voff += p.key[1] - p.key[0]
		}
	}
	for i, p := range b.pending {
		if p.literal {
			base[i] = p.lit
		} else {
			kl, vl := p.key[1]-p.key[0], p.val[1]-p.val[0]
			base[i] = entry{key: arena[koff : koff+kl], f: Field{Value: arena[voff : voff+vl], Removed: p.removed, TS: p.ts}}
			koff += kl
			voff += vl
		}
		if i > 0 && base[i-1].key >= base[i].key {
			return Fields{}, fmt.Errorf("%w: field keys out of order or repeated at %q", ErrMalformed, base[i].key)
		}
	}
	return Fields{base: base, n: len(base)}, nil
}

// String formats the registers like a map, in key order.
func (fs Fields) String() string {
	var sb strings.Builder
	sb.WriteString("map[")
	first := true
	fs.each(func(e entry) bool {
		if !first {
			sb.WriteByte(' ')
		}
		first = false
		fmt.Fprintf(&sb, "%s:%+v", e.key, e.f)
		return true
	})
	sb.WriteByte(']')
	return sb.String()
}
