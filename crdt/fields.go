package crdt

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
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
// a write costs O(√n) amortized for a session of n fields.
//
// The base is packed: its keys, values and timestamps are one allocation
// that holds no pointers (see table), so a session read from storage or
// built whole is two objects however many fields it has, a lookup reads a
// few adjacent cache lines, and the garbage collector never scans it.
type Fields struct {
	base table   // sorted by key; never modified once built
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
	if len(fs.over) > 0 {
		if i, ok := search(fs.over, key); ok {
			return fs.over[i].f, true
		}
	}
	if i, ok := fs.base.find(key); ok {
		return fs.base.field(i), true
	}
	return Field{}, false
}

// value returns the value of key when it is set: Get without the
// timestamp, for readers.
func (fs Fields) value(key string) (string, bool) {
	if len(fs.over) > 0 {
		if i, ok := search(fs.over, key); ok {
			if f := fs.over[i].f; !f.Removed {
				return f.Value, true
			}
			return "", false
		}
	}
	if i, ok := fs.base.find(key); ok {
		if v, removed := fs.base.value(i); !removed {
			return v, true
		}
	}
	return "", false
}

// CountPrefix returns the number of keys, removed ones included, that
// start with prefix: a walk of the keys up to the end of their run, which
// reads no value and no timestamp.
func (fs Fields) CountPrefix(prefix string) int {
	n := 0
	c := fs.cursor()
	c.noTS = true
	for e, ok := c.next(); ok; e, ok = c.next() {
		if strings.HasPrefix(e.key, prefix) {
			n++
		} else if e.key > prefix {
			break // sorted: the run of keys with prefix is behind
		}
	}
	return n
}

// FirstKey returns the lowest key with a register, removed or not: one
// key read, by which a reader looking for a key that sorts low (the
// node's own start with a control byte) learns that fs cannot hold it
// without a search.
func (fs Fields) FirstKey() (string, bool) {
	switch {
	case fs.base.len() == 0:
		if len(fs.over) == 0 {
			return "", false
		}
		return fs.over[0].key, true
	case len(fs.over) > 0 && fs.over[0].key < fs.base.key(0):
		return fs.over[0].key, true
	}
	return fs.base.key(0), true
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

// Values yields every key that holds a value, and the value, in ascending
// key order: All without removals and timestamps, which readers do not
// need and a packed base keeps apart, in memory such a read leaves alone.
func (fs Fields) Values() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if len(fs.over) == 0 {
			fs.base.values(yield)
			return
		}
		c := fs.cursor()
		c.noTS = true
		for e, ok := c.next(); ok; e, ok = c.next() {
			if !e.f.Removed && !yield(e.key, e.f.Value) {
				return
			}
		}
	}
}

// CopyValues returns every key that holds a value, but the keys that
// start with skip (none when skip is empty), mapped to a copy of its
// value: what a reader that hands the values on to code that may change
// them needs. The map is sized once; the copies share one buffer, each
// capped at its end so that an append to one copies it rather than
// writing into the next; the keys share fs's memory, which never changes.
// From a packed base the buffer is one copy of the values' run, which
// the table keeps in key order.
func (fs Fields) CopyValues(skip string) map[string][]byte {
	if len(fs.over) == 0 {
		return fs.base.copyValues(skip)
	}
	n, size := 0, 0
	c := fs.cursor()
	c.noTS = true
	for e, ok := c.next(); ok; e, ok = c.next() {
		if !e.f.Removed && !hasPrefix(e.key, skip) {
			n++
			size += len(e.f.Value)
		}
	}
	out := make(map[string][]byte, n)
	buf := make([]byte, 0, size)
	c = fs.cursor()
	c.noTS = true
	for e, ok := c.next(); ok; e, ok = c.next() {
		if !e.f.Removed && !hasPrefix(e.key, skip) {
			start := len(buf)
			buf = append(buf, e.f.Value...)
			out[e.key] = buf[start:len(buf):len(buf)]
		}
	}
	return out
}

// hasPrefix is strings.HasPrefix where an empty prefix matches nothing.
func hasPrefix(s, prefix string) bool {
	return prefix != "" && strings.HasPrefix(s, prefix)
}

// MemSize estimates the heap bytes fs holds: its packed base, and its
// overlay with the keys and values the overlay refers to (which versions
// of a session may share).
func (fs Fields) MemSize() int {
	n := len(fs.base) + cap(fs.over)*int(unsafe.Sizeof(entry{}))
	for _, e := range fs.over {
		n += len(e.key) + len(e.f.Value)
	}
	return n
}

// PackedLen returns the size of fs's packed base when fs is that base
// alone (no register written since it was built): what CopyPacked copies.
func (fs Fields) PackedLen() (int, bool) {
	if len(fs.over) > 0 {
		return 0, false
	}
	return len(fs.base), true
}

// CopyPacked returns fs, a packed base alone (PackedLen), reading from a
// copy of its base at the start of buf: for a cache that keeps a session's
// registers in the allocation that holds the rest of the session, where a
// read finds them beside what it has just read. The returned Fields
// shares buf, so buf must never be written again. It panics if fs has an
// overlay or buf is too short.
func (fs Fields) CopyPacked(buf []byte) Fields {
	if len(fs.over) > 0 || len(buf) < len(fs.base) {
		panic("crdt: CopyPacked of an overlay or into a short buffer")
	}
	if len(fs.base) == 0 {
		return fs
	}
	copy(buf, fs.base)
	return Fields{base: table(unsafe.String(unsafe.SliceData(buf), len(fs.base))), n: fs.n}
}

// DataLen returns the bytes of the keys and values of fs's registers, as
// All yields them. A packed base alone holds them back to back: its size
// less its offsets and timestamps.
func (fs Fields) DataLen() int {
	if len(fs.over) == 0 {
		if len(fs.base) == 0 {
			return 0
		}
		return len(fs.base) - tableHead - tableEntry*fs.base.len()
	}
	n := 0
	fs.each(func(e entry) bool {
		n += len(e.key) + len(e.f.Value)
		return true
	})
	return n
}

// maxStamp returns the greatest timestamp of fs's registers (zero when
// there are none): what admission (Session.MaxMillis) and the clock
// (Session.MaxTimestamp) read of every delta. A packed base alone, as a
// decoded delta is, keeps its timestamps together at its end, which one
// walk reads without the keys and values.
func (fs Fields) maxStamp() Timestamp {
	var m Timestamp
	if len(fs.over) > 0 {
		// Registers the overlay shadows do not count.
		fs.each(func(e entry) bool {
			m = maxTimestamp(m, e.f.TS)
			return true
		})
		return m
	}
	n := fs.base.len()
	if n == 0 {
		return m
	}
	ts := fs.base.bytes()[fs.base.tsAt(n, 0):]
	ts = ts[:16*n]
	for len(ts) >= 16 {
		// Timestamp order, written out: maxTimestamp's two comparisons
		// cost more than the walk.
		if t := readStamp(ts); t.Time > m.Time || t.Time == m.Time && t.Node > m.Node {
			m = t
		}
		ts = ts[16:]
	}
	return m
}

// each calls fn with the entries in key order until it returns false.
func (fs Fields) each(fn func(entry) bool) {
	if len(fs.over) == 0 {
		fs.base.each(fn)
		return
	}
	c := fs.cursor()
	for e, ok := c.next(); ok; e, ok = c.next() {
		if !fn(e) {
			return
		}
	}
}

// cursor walks a Fields in key order, overlay entries shadowing base ones.
// It reads the base sequentially: each key and value starts where the
// previous one ended.
type cursor struct {
	t        table
	i, n     int // next base entry, base entries
	kAt, vAt int // where the next base key and value start
	o        []entry
	noTS     bool // leave base entries' timestamps zero: the reader needs none
}

func (fs Fields) cursor() cursor {
	c := cursor{t: fs.base, n: fs.base.len(), o: fs.over}
	if c.n > 0 {
		c.kAt = c.t.keyEnd(c.n, -1)
		c.vAt = c.t.keyEnd(c.n, c.n-1)
	}
	return c
}

// baseKey returns the next base key.
func (c *cursor) baseKey() string { return string(c.t[c.kAt:c.t.keyEnd(c.n, c.i)]) }

// baseEntry returns the next base entry and moves past it.
func (c *cursor) baseEntry(key string) entry {
	kEnd := c.kAt + len(key)
	vEnd := c.t.u32(tableHead + 4*c.n + 4*c.i)
	e := entry{key, Field{
		Value:   string(c.t[c.vAt : vEnd&^removedBit]),
		Removed: vEnd&removedBit != 0,
	}}
	if !c.noTS {
		ts := c.t.bytes()[c.t.tsAt(c.n, c.i):]
		e.f.TS = readStamp(ts)
	}
	c.i++
	c.kAt, c.vAt = kEnd, vEnd&^removedBit
	return e
}

// skipBase moves past the next base entry, whose key is key.
func (c *cursor) skipBase(key string) {
	c.kAt += len(key)
	c.vAt = c.t.u32(tableHead+4*c.n+4*c.i) &^ removedBit
	c.i++
}

func (c *cursor) next() (entry, bool) {
	if c.i == c.n {
		if len(c.o) == 0 {
			return entry{}, false
		}
		e := c.o[0]
		c.o = c.o[1:]
		return e, true
	}
	k := c.baseKey()
	if len(c.o) == 0 || k < c.o[0].key {
		return c.baseEntry(k), true
	}
	e := c.o[0]
	c.o = c.o[1:]
	if k == e.key {
		c.skipBase(k)
	}
	return e, true
}

// With returns fs with key's register set to f, whatever it held.
func (fs Fields) With(key string, f Field) Fields {
	es := [1]entry{{key, f}}
	return fs.withAll(es[:])
}

// withAll returns fs with the registers of es set, es sorted by key and
// distinct: With for each, in one copy of the overlay (a versioned write
// changes a field and its writer's version entry). When the overlay would
// outgrow its limit, the new base is written straight from fs and es,
// without the overlay that would only be copied into it.
func (fs Fields) withAll(es []entry) Fields {
	fresh := 0
	for _, e := range es {
		if _, ok := search(fs.over, e.key); !ok {
			if _, inBase := fs.base.find(e.key); !inBase {
				fresh++
			}
		}
	}
	return fs.withFresh(es, fresh)
}

// withFresh is withAll for a caller that knows how many keys of es fs
// lacks (Join looked each up already).
func (fs Fields) withFresh(es []entry, fresh int) Fields {
	// The overlay the write leaves: fs's, less the keys es replaces, plus es.
	size, n, i := len(fs.over)+len(es), fs.n+fresh, 0
	for _, e := range es {
		for i < len(fs.over) && fs.over[i].key < e.key {
			i++
		}
		if i < len(fs.over) && fs.over[i].key == e.key {
			size--
			i++
		}
	}
	if size > overLimit(fs.base.len()) {
		return fs.rebase(es, n)
	}
	over := make([]entry, 0, size)
	i = 0
	for _, e := range es {
		for i < len(fs.over) && fs.over[i].key < e.key {
			over = append(over, fs.over[i])
			i++
		}
		if i < len(fs.over) && fs.over[i].key == e.key {
			i++
		}
		over = append(over, e)
	}
	over = append(over, fs.over[i:]...)
	return Fields{base: fs.base, over: over, n: n}
}

// rebase returns fs with the registers of es set (sorted, distinct) as a
// single packed base of n registers: one pass to size it, one to write it.
func (fs Fields) rebase(es []entry, n int) Fields {
	keys, vals := 0, 0
	fs.eachWith(es, func(e entry) {
		keys += len(e.key)
		vals += len(e.f.Value)
	})
	w := newTableWriter(n, keys, vals)
	fs.eachWith(es, func(e entry) { w.add(e.key, e.f.Value, e.f.Removed, e.f.TS) })
	return Fields{base: w.table(), n: n}
}

// eachWith calls fn, in key order, with each register of fs with those of
// es (sorted, distinct) set.
func (fs Fields) eachWith(es []entry, fn func(entry)) {
	c := fs.cursor()
	cur, ok := c.next()
	for _, e := range es {
		for ok && cur.key < e.key {
			fn(cur)
			cur, ok = c.next()
		}
		if ok && cur.key == e.key {
			cur, ok = c.next()
		}
		fn(e)
	}
	for ; ok; cur, ok = c.next() {
		fn(cur)
	}
}

// overLimit is how many entries the overlay of a base of n entries holds
// before a write merges both: about √n, at least 8.
func overLimit(n int) int {
	return max(8, 1<<((bits.Len(uint(n))+1)/2))
}

// compact returns fs as a single packed base.
func (fs Fields) compact() Fields {
	if len(fs.over) == 0 {
		return fs
	}
	keys, vals := 0, 0
	fs.each(func(e entry) bool {
		keys += len(e.key)
		vals += len(e.f.Value)
		return true
	})
	w := newTableWriter(fs.n, keys, vals)
	fs.each(func(e entry) bool {
		w.add(e.key, e.f.Value, e.f.Removed, e.f.TS)
		return true
	})
	return Fields{base: w.table(), n: fs.n}
}

// Join returns the per-key join of fs and o, the greater register under
// Field.Compare winning, and the keys whose register in fs changed, sorted.
// A join into an empty fs returns o packed.
func (fs Fields) Join(o Fields) (Fields, []string) {
	switch {
	case o.n == 0:
		return fs, nil
	case fs.n == 0:
		keys := make([]string, 0, o.n)
		o.each(func(e entry) bool { keys = append(keys, e.key); return true })
		return o.compact(), keys
	}
	// Find what changes first: a delta carrying a whole state mostly holds
	// registers fs already has, and the few it changes are cheap to write
	// through the overlay.
	var buf [8]entry
	wins, fresh := buf[:0], 0
	c := o.cursor()
	for e, ok := c.next(); ok; e, ok = c.next() {
		if cur, ok := fs.Get(e.key); !ok || e.f.Compare(cur) > 0 {
			wins = append(wins, e)
			if !ok {
				fresh++
			}
		}
	}
	if len(wins) == 0 {
		return fs, nil
	}
	changed := make([]string, 0, len(wins))
	for _, e := range wins {
		changed = append(changed, e.key)
	}
	return fs.withFresh(wins, fresh), changed
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
		// Operators rather than strings.Compare, through which key
		// escapes (its assembly has no noescape): a lookup by a key built
		// on the stack (versionCovers) would allocate it.
		for i := range es {
			if k := es[i].key; k >= key {
				return i, k == key
			}
		}
		return len(es), false
	}
	// By hand rather than slices.BinarySearchFunc, whose comparison, a
	// func value, makes key escape.
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(es) && es[lo].key == key
}

// table is a sorted run of registers packed into one string, which holds
// no pointers and never changes. Offsets are from its start, integers in
// the machine's byte order (a table lives in memory only):
//
//	[0, 4)          n, the number of registers (uint32)
//	[4, 4+4n)       the end offset of each key (uint32)
//	[4+4n, 4+8n)    the end offset of each value (uint32), top bit set
//	                for a removal
//	[4+8n, ...)     the keys, back to back, then the values
//	last 16n bytes  each timestamp: Time, then Node (uint64 each)
//
// Key i starts where key i-1 ends (the first at 4+8n), value i where
// value i-1 ends (the first where the last key ends). A lookup binary
// searches the key ends and the keys, which are adjacent: for a session
// of a few dozen fields, a few neighbouring cache lines. Timestamps, which
// readers do not need, come last. The empty string is the empty table.
type table string

const (
	tableHead  = 4
	tableEntry = 24 // bytes of metadata per register
	removedBit = 1 << 31
	// maxTable bounds a table's size, so that offsets fit below the
	// removal bit; sessions are far smaller (Limits.MaxSessionBytes).
	maxTable = removedBit - 1
)

var ne = binary.NativeEndian

func (t table) bytes() []byte { return unsafe.Slice(unsafe.StringData(string(t)), len(t)) }

func (t table) len() int {
	if len(t) == 0 {
		return 0
	}
	return int(ne.Uint32(t.bytes()))
}

func (t table) u32(off int) int { return int(ne.Uint32(t.bytes()[off:])) }

// readStamp reads a register's timestamp where the table writer put it
// (tableWriter.add): its time, then its node, 8 bytes each.
func readStamp(b []byte) Timestamp {
	return Timestamp{Time: ne.Uint64(b), Node: NodeID(ne.Uint64(b[8:]))}
}

// tsAt returns where the timestamp of register i of n starts.
func (t table) tsAt(n, i int) int { return len(t) - 16*(n-i) }

// keyEnd returns where key i ends, and where the keys start for i = -1.
func (t table) keyEnd(n, i int) int {
	if i < 0 {
		return tableHead + 8*n
	}
	return t.u32(tableHead + 4*i)
}

// key returns key i.
func (t table) key(i int) string {
	n := t.len()
	return string(t[t.keyEnd(n, i-1):t.keyEnd(n, i)])
}

// value returns the value of register i and whether it is a removal.
func (t table) value(i int) (string, bool) {
	n := t.len()
	start := t.keyEnd(n, n-1)
	if i > 0 {
		start = t.u32(tableHead+4*n+4*(i-1)) &^ removedBit
	}
	end := t.u32(tableHead + 4*n + 4*i)
	return string(t[start : end&^removedBit]), end&removedBit != 0
}

// field returns register i.
func (t table) field(i int) Field {
	n := t.len()
	v, removed := t.value(i)
	b := t.bytes()[t.tsAt(n, i):]
	return Field{Value: v, Removed: removed, TS: readStamp(b)}
}

func (t table) entry(i int) entry { return entry{t.key(i), t.field(i)} }

// each is Fields.each for a Fields that is t alone: one sequential walk.
func (t table) each(fn func(entry) bool) {
	n := t.len()
	if n == 0 {
		return
	}
	b := t.bytes()
	ends := b[tableHead : tableHead+8*n] // key ends, then value ends
	ts := b[len(b)-16*n:]
	kAt := tableHead + 8*n
	vAt := int(ne.Uint32(ends[4*(n-1):]))
	for i := range n {
		kEnd := int(ne.Uint32(ends[4*i:]))
		vEnd := ne.Uint32(ends[4*(n+i):])
		v := int(vEnd &^ removedBit)
		e := entry{string(t[kAt:kEnd]), Field{
			Value:   string(t[vAt:v]),
			Removed: vEnd&removedBit != 0,
			TS:      readStamp(ts[16*i:]),
		}}
		if !fn(e) {
			return
		}
		kAt, vAt = kEnd, v
	}
}

// values is Fields.Values for a Fields that is t alone: one sequential
// walk of the offsets, keys and values.
func (t table) values(yield func(string, string) bool) {
	n := t.len()
	if n == 0 {
		return
	}
	b := t.bytes()
	ends := b[tableHead : tableHead+8*n] // key ends, then value ends
	kAt := tableHead + 8*n
	vAt := int(ne.Uint32(ends[4*(n-1):]))
	for i := range n {
		kEnd := int(ne.Uint32(ends[4*i:]))
		vEnd := ne.Uint32(ends[4*(n+i):])
		v := int(vEnd &^ removedBit)
		if vEnd&removedBit == 0 && !yield(string(t[kAt:kEnd]), string(t[vAt:v])) {
			return
		}
		kAt, vAt = kEnd, v
	}
}

// copyValues is Fields.CopyValues for a Fields that is t alone. The keys
// that start with skip are one run in key order, found by a binary
// search; the values of the registers copied lie between the first one's
// start and the last one's end, which one conversion copies without
// first zeroing the buffer. What lies between them and is not copied out
// (a removal's or a skipped key's value, usually empty) stays in the
// buffer, out of reach of every capped slice.
func (t table) copyValues(skip string) map[string][]byte {
	n := t.len()
	if n == 0 {
		return map[string][]byte{}
	}
	b := t.bytes()
	ends := b[tableHead : tableHead+8*n] // key ends, then value ends
	lo, hi := n, n                       // the run of keys starting with skip
	if skip != "" {
		lo = t.lowerBound(skip)
		for hi = lo; hi < n && strings.HasPrefix(t.key(hi), skip); hi++ {
		}
	}
	// The registers copied, the first one's value start and the last
	// one's value end.
	count, first, last := 0, -1, 0
	vAt := int(ne.Uint32(ends[4*(n-1):]))
	for i := range n {
		vEnd := ne.Uint32(ends[4*(n+i):])
		v := int(vEnd &^ removedBit)
		if vEnd&removedBit == 0 && (i < lo || i >= hi) {
			count++
			if first < 0 {
				first = vAt
			}
			last = v
		}
		vAt = v
	}
	out := make(map[string][]byte, count)
	if count == 0 {
		return out
	}
	buf := []byte(t[first:last])
	kAt := tableHead + 8*n
	vAt = int(ne.Uint32(ends[4*(n-1):]))
	for i := range n {
		kEnd := int(ne.Uint32(ends[4*i:]))
		vEnd := ne.Uint32(ends[4*(n+i):])
		v := int(vEnd &^ removedBit)
		if vEnd&removedBit == 0 && (i < lo || i >= hi) {
			out[string(t[kAt:kEnd])] = buf[vAt-first : v-first : v-first]
		}
		kAt, vAt = kEnd, v
	}
	return out
}

// lowerBound returns the index of the first key not less than key.
func (t table) lowerBound(key string) int {
	n := t.len()
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.key(m) < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the index of key, if t holds it.
func (t table) find(key string) (int, bool) {
	n := t.len()
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		start := tableHead + 8*n
		if m > 0 {
			start = t.u32(tableHead + 4*(m-1))
		}
		// Operators rather than strings.Compare: see search.
		switch k := string(t[start:t.u32(tableHead+4*m)]); {
		case k == key:
			return m, true
		case k < key:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// tableWriter packs registers, added in key order, into a table.
type tableWriter struct {
	b          []byte
	n, i       int
	kpos, vpos int
}

// newTableWriter prepares a table of n registers whose keys and values
// take keys and vals bytes. It panics if the table would exceed maxTable,
// which no session within Limits comes near.
func newTableWriter(n, keys, vals int) tableWriter {
	size := tableHead + tableEntry*n + keys + vals
	if size > maxTable {
		panic(fmt.Sprintf("crdt: %d fields of %d bytes do not fit one table", n, keys+vals))
	}
	b := make([]byte, size)
	ne.PutUint32(b, uint32(n))
	return tableWriter{b: b, n: n, kpos: tableHead + 8*n, vpos: tableHead + 8*n + keys}
}

func (w *tableWriter) add(key, value string, removed bool, ts Timestamp) {
	w.kpos += copy(w.b[w.kpos:], key)
	ne.PutUint32(w.b[tableHead+4*w.i:], uint32(w.kpos))
	w.vpos += copy(w.b[w.vpos:], value)
	end := uint32(w.vpos)
	if removed {
		end |= removedBit
	}
	ne.PutUint32(w.b[tableHead+4*w.n+4*w.i:], end)
	ts16 := w.b[len(w.b)-16*(w.n-w.i):]
	ne.PutUint64(ts16, ts.Time)
	ne.PutUint64(ts16[8:], uint64(ts.Node))
	w.i++
}

// table returns what was added. The writer's buffer becomes the table's
// and must not be written again.
func (w *tableWriter) table() table {
	if w.n == 0 {
		return ""
	}
	return table(unsafe.String(unsafe.SliceData(w.b), len(w.b)))
}

// FieldsBuilder builds a Fields from registers given in ascending key
// order, packing every key, value and timestamp into one allocation: the
// compact form decoders use. The zero FieldsBuilder is ready to use.
type FieldsBuilder struct {
	arena   []byte
	pending []pendingEntry
}

type pendingEntry struct {
	key, val [2]int // offsets in arena, unless literal
	removed  bool
	ts       Timestamp
	literal  bool // the entry is lit, not in arena
	lit      entry
}

func (b *FieldsBuilder) keyOf(p *pendingEntry) string {
	if p.literal {
		return p.lit.key
	}
	return unsafe.String(unsafe.SliceData(b.arena[p.key[0]:]), p.key[1]-p.key[0])
}

func (b *FieldsBuilder) valueOf(p *pendingEntry) string {
	if p.literal {
		return p.lit.f.Value
	}
	if p.val[1] == p.val[0] {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b.arena[p.val[0]:]), p.val[1]-p.val[0])
}

// Grow makes room for n more bytes of keys and values and fields more
// registers.
func (b *FieldsBuilder) Grow(bytes, fields int) {
	b.arena = slices.Grow(b.arena, bytes)
	b.pending = slices.Grow(b.pending, fields)
}

// Add appends key = f. Keys must come in strictly ascending order. Build
// copies the key and value into the Fields it builds.
func (b *FieldsBuilder) Add(key string, f Field) {
	b.pending = append(b.pending, pendingEntry{literal: true, lit: entry{key, f}})
}

// AddBytes appends a register whose key and value are copied from the
// given bytes; value is ignored for a removal. Keys must come in strictly
// ascending order.
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
// ErrMalformed if the keys were not added in strictly ascending order, and
// with ErrTooLarge if they do not fit one table (2 GiB).
func (b *FieldsBuilder) Build() (Fields, error) {
	defer b.Reset()
	if len(b.pending) == 0 {
		return Fields{}, nil
	}
	keys, vals := 0, 0
	for i := range b.pending {
		p := &b.pending[i]
		k := b.keyOf(p)
		if i > 0 && b.keyOf(&b.pending[i-1]) >= k {
			return Fields{}, fmt.Errorf("%w: field keys out of order or repeated at %q", ErrMalformed, k)
		}
		keys += len(k)
		vals += len(b.valueOf(p))
	}
	n := len(b.pending)
	if tableHead+tableEntry*n+keys+vals > maxTable {
		return Fields{}, fmt.Errorf("%w: %d fields of %d bytes", ErrTooLarge, n, keys+vals)
	}
	w := newTableWriter(n, keys, vals)
	for i := range b.pending {
		p := &b.pending[i]
		if p.literal {
			w.add(p.lit.key, p.lit.f.Value, p.lit.f.Removed, p.lit.f.TS)
		} else {
			w.add(b.keyOf(p), b.valueOf(p), p.removed, p.ts)
		}
	}
	return Fields{base: w.table(), n: n}, nil
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
