package crdt

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// VersionKeyPrefix starts the field keys that hold a session's version
// vector: one register per writing node, VersionKeyPrefix followed by the
// node id in 16 hex digits, whose timestamp is the latest stamp of a write
// that node made to the session (the register holds no value). Field
// registers join by the later timestamp, and every write to a node's entry
// carries that node's stamp, so the registers join as a per-node maximum: a
// version vector that is a CRDT of its own, replicated, persisted and
// collected with the session it describes, in the wire format as it is.
const VersionKeyPrefix = "\x00sm/v/"

// VersionKey returns the field key of node's entry in a version vector:
// VersionKeyPrefix and the node in 16 lower-case hex digits.
func VersionKey(node NodeID) string {
	// A node stamps its own entry on every write: the keys made are
	// kept, one a slot, so that this costs no allocation then (nor for
	// the few nodes of one process: tests, the simulator).
	slot := &versionKeys[uint64(node)%uint64(len(versionKeys))]
	if e := slot.Load(); e != nil && e.node == node {
		return e.key
	}
	var b [len(VersionKeyPrefix) + 16]byte
	k := strings.Clone(versionKeyIn(&b, node))
	slot.Store(&versionKeyEntry{node: node, key: k})
	return k
}

// versionKeys holds the keys VersionKey made, the last one for each slot.
var versionKeys [64]atomic.Pointer[versionKeyEntry]

type versionKeyEntry struct {
	node NodeID
	key  string
}

// VersionField returns the field key and register that record a write
// stamped ts in the version vector of its session.
func VersionField(ts Timestamp) (string, Field) {
	return VersionKey(ts.Node), Field{TS: ts}
}

// VersionEntry is one node's entry in a Version: the latest stamp (the
// packed physical and logical time of a Timestamp) of that node's writes.
type VersionEntry struct {
	Node NodeID
	Time uint64
}

// Version is a version vector: entries sorted by node, one per node, each
// with a non-zero time. The zero Version (nil) is the bottom: every state
// covers it.
//
// A session's version says which writes it reflects. The invariant that
// makes it mean something: a replica that holds entry (w, t) holds every
// field register w held when it wrote at t, or a later one. A client keeps
// the version of the last state it saw and shows it to the next peer it
// talks to; a peer whose version covers it holds what the client saw, but
// for registers that no entry stands for (below).
//
// Writes keep the invariant in one of two ways:
//
//   - A whole-state delta carries everything its writer held plus the
//     write and the writer's new entry, under an empty Guard: whoever
//     merges it holds what the entry stands for.
//   - A change-only delta carries the written registers, the writer's new
//     entry, and a Guard whose Need is the writer's version just before
//     the write. A replica takes the delta's entries only if its own
//     version covers Need (Session.Merge): it then holds everything the
//     writer's previous entries stand for and, with the written
//     registers, everything the new entry stands for. Otherwise nothing of
//     it merges (Change.Dropped): the node keeps it until the replica
//     holds what Need asks, or a whole state (anti-entropy, a fetch)
//     brings it. Merging its registers without its entries would let a
//     reader here see a register that a replica whose version covers
//     this one's may lack (monotonic reads across peers).
//
// A change-only delta is sound only if the writer's own state is covered
// by its version: every register it holds is stood for by its entries
// (Session.Covered). Merge tracks that on every state: a guarded delta
// that meets its guard keeps it, and makes it so if it carried the whole
// state; any merge that changes a register without an entry standing for
// it (an unguarded delta, an anti-entropy or fetched state, whose sender
// may hold such registers) ends it
// (Change.Unbacked). It is never stored, so after a restart every session
// starts uncovered and its first versioned write carries the whole state.
// A writer whose state is not covered writes the whole state.
//
// Deltas of one session joined in a Batch keep the invariant (see
// Batch.Add). Registers that no entry stands for exist (an unversioned
// write, or a delta whose entries were dropped, merged here): a reader sees
// them, but a version does not promise them until an entry that stands for
// them arrives.
type Version []VersionEntry

// Version returns the version vector of s, nil for a tombstone (which
// covers every version: destroyed is the top of the lattice).
func (s *Session) Version() Version { return s.Fields.version() }

// version returns the version vector the entries among fs make.
func (fs Fields) version() Version {
	// Every read asks for it: walk the entries without an iterator and
	// stop past the prefix (keys are sorted, the entries come first).
	var v Version
	c := fs.cursor()
	for e, ok := c.next(); ok; e, ok = c.next() {
		if !strings.HasPrefix(e.key, VersionKeyPrefix) {
			if e.key > VersionKeyPrefix {
				break
			}
			continue
		}
		node, ok := parseNodeHex(e.key[len(VersionKeyPrefix):])
		if !ok || e.f.TS.Time == 0 {
			continue // not a key VersionKey writes: not part of the version
		}
		v = append(v, VersionEntry{Node: NodeID(node), Time: e.f.TS.Time})
	}
	// Hex keys of equal length sort like the node ids.
	return v
}

// parseNodeHex parses the 16 lower-case hex digits VersionKey writes.
func parseNodeHex(h string) (uint64, bool) {
	if len(h) != 16 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// Covers reports whether v is at least w at every node: a state of version
// v reflects everything a state of version w reflects.
func (v Version) Covers(w Version) bool {
	i := 0
	for _, e := range w {
		for i < len(v) && v[i].Node < e.Node {
			i++
		}
		if i == len(v) || v[i].Node != e.Node || v[i].Time < e.Time {
			return false
		}
	}
	return true
}

// Missing returns the nodes at which v is behind w.
func (v Version) Missing(w Version) []NodeID {
	var out []NodeID
	for _, e := range w {
		if v.Get(e.Node) < e.Time {
			out = append(out, e.Node)
		}
	}
	return out
}

// Get returns node's time in v, 0 when v has no entry for it.
func (v Version) Get(node NodeID) uint64 {
	i, ok := slices.BinarySearchFunc(v, node, func(e VersionEntry, n NodeID) int { return cmp.Compare(e.Node, n) })
	if !ok {
		return 0
	}
	return v[i].Time
}

// Join returns the per-node maximum of v and w. It allocates a new vector.
func (v Version) Join(w Version) Version {
	out := make(Version, 0, len(v)+len(w))
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j == len(w) || (i < len(v) && v[i].Node < w[j].Node):
			out = append(out, v[i])
			i++
		case i == len(v) || w[j].Node < v[i].Node:
			out = append(out, w[j])
			j++
		default:
			out = append(out, VersionEntry{Node: v[i].Node, Time: max(v[i].Time, w[j].Time)})
			i++
			j++
		}
	}
	return out
}

// Equal reports whether v and w hold the same entries.
func (v Version) Equal(w Version) bool { return slices.Equal(v, w) }

// versionFormat is the first byte of an encoded Version.
const versionFormat = 1

// MaxVersionEntries bounds the entries ParseVersion accepts: a session
// written through that many different peers is far beyond what a client's
// cookie or header should carry.
const MaxVersionEntries = 64

// String encodes v compactly for a client to carry (a cookie, a header):
// unpadded base64url of a format byte and 16 bytes per entry (node id,
// time, big-endian). A version of one entry is 23 characters. The zero
// Version encodes as "".
func (v Version) String() string {
	if len(v) == 0 {
		return ""
	}
	b := make([]byte, 1, 1+16*len(v))
	b[0] = versionFormat
	for _, e := range v {
		b = binary.BigEndian.AppendUint64(b, uint64(e.Node))
		b = binary.BigEndian.AppendUint64(b, e.Time)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseVersion decodes a Version written by String. Only that exact
// encoding is accepted: entries in ascending node order, no zero time, at
// most MaxVersionEntries. "" is the zero Version. Errors wrap ErrMalformed.
func ParseVersion(s string) (Version, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(1+16*MaxVersionEntries) {
		return nil, fmt.Errorf("%w: version of %d characters (at most %d entries)", ErrMalformed, len(s), MaxVersionEntries)
	}
	// Go's base64 decoders skip CR and LF even in Strict mode: a version
	// has one spelling, so they are refused.
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: version: line break", ErrMalformed)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: version: %w", ErrMalformed, err)
	}
	if len(b) < 17 || (len(b)-1)%16 != 0 || b[0] != versionFormat {
		return nil, fmt.Errorf("%w: version: bad length or format", ErrMalformed)
	}
	v := make(Version, 0, (len(b)-1)/16)
	for p := b[1:]; len(p) > 0; p = p[16:] {
		e := VersionEntry{Node: NodeID(binary.BigEndian.Uint64(p)), Time: binary.BigEndian.Uint64(p[8:])}
		if e.Time == 0 || (len(v) > 0 && v[len(v)-1].Node >= e.Node) {
			return nil, fmt.Errorf("%w: version: entries out of order, repeated or zero", ErrMalformed)
		}
		v = append(v, e)
	}
	return v, nil
}

// versionCovers reports whether the version entries among fs cover need,
// as fs's Version().Covers(need) would, without building the Version.
// Every guarded delta asks it: need is a writer's version, a few entries,
// each looked up by its key, which is cheaper than walking the entries
// of fs and parsing their keys.
func (fs Fields) versionCovers(need Version) bool {
	var buf [len(VersionKeyPrefix) + 16]byte
	for i, e := range need {
		if i > 0 && need[i-1].Node >= e.Node {
			// Not a Version (out of order or repeated): the walk gives
			// the answer it always gave.
			return fs.versionCoversWalk(need)
		}
		// A key that parses to e.Node is exactly VersionKey(e.Node): the
		// keys are 16 lower-case hex digits. Made on the stack: Get keeps
		// no reference to it.
		f, ok := fs.Get(versionKeyIn(&buf, e.Node))
		if !ok || f.TS.Time == 0 || f.TS.Time < e.Time {
			return false
		}
	}
	return true
}

// versionKeyIn writes VersionKey(node) into buf and returns it as a string
// that shares buf: for a lookup that keeps no reference to it.
func versionKeyIn(buf *[len(VersionKeyPrefix) + 16]byte, node NodeID) string {
	const digits = "0123456789abcdef"
	copy(buf[:], VersionKeyPrefix)
	for i, n := len(buf)-1, uint64(node); i >= len(VersionKeyPrefix); i, n = i-1, n>>4 {
		buf[i] = digits[n&0xf]
	}
	return unsafe.String(&buf[0], len(buf))
}

// versionCoversWalk is versionCovers by a walk of fs's entries in key
// order, for any need.
func (fs Fields) versionCoversWalk(need Version) bool {
	i := 0
	c := fs.cursor()
	for e, ok := c.next(); ok && i < len(need); e, ok = c.next() {
		if !strings.HasPrefix(e.key, VersionKeyPrefix) {
			if e.key > VersionKeyPrefix {
				break
			}
			continue
		}
		node, ok := parseNodeHex(e.key[len(VersionKeyPrefix):])
		if !ok || e.f.TS.Time == 0 {
			continue
		}
		if need[i].Node < NodeID(node) {
			return false // need[i] has no entry here: they come in node order
		}
		if need[i].Node == NodeID(node) {
			if e.f.TS.Time < need[i].Time {
				return false
			}
			i++
		}
	}
	return i == len(need)
}

// withoutVersion returns fs without its version entries, and whether it
// held any.
func (fs Fields) withoutVersion() (Fields, bool) {
	var b FieldsBuilder
	dropped := false
	fs.each(func(e entry) bool {
		if strings.HasPrefix(e.key, VersionKeyPrefix) {
			dropped = true
		} else {
			b.Add(e.key, e.f)
		}
		return true
	})
	if !dropped {
		return fs, false
	}
	out, _ := b.Build() // in key order: cannot fail
	return out, true
}

// dominates reports whether fs holds, for every register of o that is not
// a version entry, the same register or a later one.
func (fs Fields) dominates(o Fields) bool {
	ok := true
	o.each(func(e entry) bool {
		if strings.HasPrefix(e.key, VersionKeyPrefix) {
			return true
		}
		f, has := fs.Get(e.key)
		ok = has && f.Compare(e.f) >= 0
		return ok
	})
	return ok
}
