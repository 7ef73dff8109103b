package persist

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A session is stored as records: a header record, which holds the header
// and every field as of its last write, and one record per field written
// since, so that a write of one field rewrites that field only, while a new
// session (the bulk of an anti-entropy repair) is one record. A reader joins
// a field record with the header's copy of the field (last writer wins), so
// a field record older than the header's copy is harmless.
//
// A field record written since format 4 also carries the session's version
// entries (crdt.VersionKeyPrefix) as of its write, its riders, and a write
// of user fields writes no record of its own for the entries it stamps:
// one record a write rather than two. A record rewritten loses the riders
// it had, but its new riders are the session's entries as they are then,
// at least as recent, so every entry's latest register stays in some
// record; stale copies in older records lose the join. A write that
// changes version entries only (a remote batch merging them) writes their
// records as format 3 did.
//
//	's' bucket(2) len(id)(2) id 0x00       -> header record
//	's' bucket(2) len(id)(2) id 0x01 key   -> field record
//	'x' deadline(8, big-endian ms) id      -> empty (deadline index)
//	'm' "format"                           -> formatMarker
//
// All big-endian. The id's length makes a session's records one key prefix
// whatever bytes the id holds, so a bucket scan meets each session's header
// and then its fields. Sessions are therefore stored by id length, then id.
const (
	prefixSession = 's'
	prefixExpiry  = 'x'
	kindHeader    = 0x00
	kindField     = 0x01
)

// sessionPrefix is the key prefix of every record of session id.
func sessionPrefix(id string) []byte {
	return appendSessionPrefix(make([]byte, 0, 6+len(id)), id)
}

// appendSessionPrefix appends what sessionPrefix returns to b.
func appendSessionPrefix(b []byte, id string) []byte {
	b = append(b, prefixSession)
	b = binary.BigEndian.AppendUint16(b, uint16(BucketOf(id)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	return append(b, id...)
}

func headerKey(id string) []byte { return append(sessionPrefix(id), kindHeader) }

func fieldKey(id, key string) []byte {
	return appendFieldKey(make([]byte, 0, fieldKeyLen(id, key)), id, key)
}

// appendFieldKey appends fieldKey(id, key) to b.
func appendFieldKey(b []byte, id, key string) []byte {
	return append(append(appendSessionPrefix(b, id), kindField), key...)
}

func fieldKeyLen(id, key string) int { return 6 + len(id) + len(key) }

func expiryKey(deadline int64, id string) []byte {
	k := make([]byte, 9+len(id))
	k[0] = prefixExpiry
	binary.BigEndian.PutUint64(k[1:], uint64(deadline))
	copy(k[9:], id)
	return k
}

// parseSessionKey splits a session record key into id, kind and field key.
func parseSessionKey(k []byte) (id string, kind byte, key string, err error) {
	if len(k) < 6 || k[0] != prefixSession {
		return "", 0, "", fmt.Errorf("%w: bad session key %x", ErrCorrupt, k)
	}
	n := int(binary.BigEndian.Uint16(k[3:5]))
	if len(k) < 6+n {
		return "", 0, "", fmt.Errorf("%w: bad session key %x", ErrCorrupt, k)
	}
	id, kind, key = string(k[5:5+n]), k[5+n], string(k[6+n:])
	switch {
	case kind == kindHeader && key != "", kind == kindField && key == "", kind > kindField:
		return "", 0, "", fmt.Errorf("%w: bad session key %x", ErrCorrupt, k)
	}
	return id, kind, key, nil
}

// header is the part of a session stored in its header record.
type header struct {
	created    crdt.Timestamp
	absolute   int64
	idle       int64
	idleTS     crdt.Timestamp
	lastAccess int64
	destroyed  crdt.Timestamp
}

func headerOf(s *crdt.Session) header {
	return header{created: s.Created, absolute: s.Absolute, idle: s.Idle, idleTS: s.IdleTS, lastAccess: s.LastAccess, destroyed: s.Destroyed}
}

// encodeHeader writes the header as seven uvarints, then, when the idle
// timeout is stamped, the stamp as two more (appendIdleStamp).
func encodeHeader(h header) []byte {
	return appendIdleStamp(encodeHeaderFixed(h), h)
}

// encodeHeaderFixed writes the seven uvarints every header record starts
// with.
func encodeHeaderFixed(h header) []byte {
	return appendHeaderFixed(make([]byte, 0, 48), h)
}

// appendHeaderFixed appends what encodeHeaderFixed writes to b.
func appendHeaderFixed(b []byte, h header) []byte {
	for _, v := range [...]uint64{h.created.Time, uint64(h.created.Node), uint64(h.absolute), uint64(h.idle),
		uint64(h.lastAccess), h.destroyed.Time, uint64(h.destroyed.Node)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// appendIdleStamp appends the idle timeout's stamp (crdt.Session.IdleTS)
// as two uvarints, or nothing when it is zero. In a header record it
// trails the fields: records written before the stamp existed (format
// sessionmesh/persist/2) end with their fields and read as unstamped.
func appendIdleStamp(b []byte, h header) []byte {
	if h.idleTS.IsZero() {
		return b
	}
	b = binary.AppendUvarint(b, h.idleTS.Time)
	return binary.AppendUvarint(b, uint64(h.idleTS.Node))
}

// encodeHeaderRecord writes s's header, then its fields: a uvarint count,
// then per field (in key order) the key and the field record, each after
// its uvarint length; then the idle stamp, if any.
func encodeHeaderRecord(s *crdt.Session) []byte {
	h := headerOf(s)
	b := encodeHeaderFixed(h)
	b = binary.AppendUvarint(b, uint64(s.Fields.Len()))
	for k, f := range s.Fields.All() {
		f := encodeField(f)
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return appendIdleStamp(b, h)
}

// decodeHeaderRecord decodes a header record. Its fields' keys and values
// are copied into one allocation: a cached session is a few objects, not a
// few per field.
// builders is scratch space for decoding header records.
var builders = sync.Pool{New: func() any { return new(crdt.FieldsBuilder) }}

func decodeHeaderRecord(b []byte) (header, crdt.Fields, error) {
	var none crdt.Fields
	h, b, err := decodeHeader(b)
	if err != nil {
		return header{}, none, err
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return header{}, none, fmt.Errorf("%w: header record: bad field count", ErrCorrupt)
	}
	b = b[w:]
	fb := builders.Get().(*crdt.FieldsBuilder)
	defer func(size int) {
		if fb.Len() == 0 && size <= 64<<10 { // keep no large scratch
			builders.Put(fb)
		}
	}(len(b))
	fb.Reset()
	fb.Grow(len(b), int(n))
	next := func() ([]byte, error) {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return nil, fmt.Errorf("%w: header record truncated", ErrCorrupt)
		}
		out := b[w : w+int(l)]
		b = b[w+int(l):]
		return out, nil
	}
	for range n {
		k, err := next()
		if err != nil {
			return header{}, none, err
		}
		v, err := next()
		if err != nil {
			return header{}, none, err
		}
		ts, removed, val, err := decodeFieldBytes(v)
		if err != nil {
			return header{}, none, err
		}
		fb.AddBytes(k, val, removed, ts)
	}
	if len(b) != 0 {
		t, n := binary.Uvarint(b)
		if n <= 0 {
			return header{}, none, fmt.Errorf("%w: header record: bad idle stamp", ErrCorrupt)
		}
		node, m := binary.Uvarint(b[n:])
		if m <= 0 || n+m != len(b) || t == 0 && node == 0 {
			return header{}, none, fmt.Errorf("%w: %d bytes after the header record's fields", ErrCorrupt, len(b))
		}
		h.idleTS = crdt.Timestamp{Time: t, Node: crdt.NodeID(node)}
	}
	fields, err := fb.Build()
	if err != nil {
		return header{}, none, fmt.Errorf("%w: header record: %w", ErrCorrupt, err)
	}
	return h, fields, nil
}

// decodeHeader reads the seven uvarints a header record starts with and
// returns the rest.
func decodeHeader(b []byte) (header, []byte, error) {
	var v [7]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return header{}, nil, fmt.Errorf("%w: header record truncated", ErrCorrupt)
		}
		v[i], b = x, b[n:]
	}
	return header{
		created:  crdt.Timestamp{Time: v[0], Node: crdt.NodeID(v[1])},
		absolute: int64(v[2]), idle: int64(v[3]), lastAccess: int64(v[4]),
		destroyed: crdt.Timestamp{Time: v[5], Node: crdt.NodeID(v[6])},
	}, b, nil
}

// encodeField writes a field register: uvarint stamp time, uvarint node,
// 0 then the value, or 1 for a removal.
func encodeField(f crdt.Field) []byte {
	return appendField(make([]byte, 0, 2*binary.MaxVarintLen64+1+len(f.Value)), f)
}

// appendField appends what encodeField writes to b.
func appendField(b []byte, f crdt.Field) []byte {
	b = appendFieldStamp(b, f)
	if f.Removed {
		return b
	}
	return append(b, f.Value...)
}

// appendFieldStamp appends a field record up to its value.
func appendFieldStamp(b []byte, f crdt.Field) []byte {
	b = binary.AppendUvarint(b, f.TS.Time)
	b = binary.AppendUvarint(b, uint64(f.TS.Node))
	if f.Removed {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeField(b []byte) (crdt.Field, error) {
	ts, removed, v, err := decodeFieldBytes(b)
	if err != nil {
		return crdt.Field{}, err
	}
	return crdt.Field{Value: string(v), Removed: removed, TS: ts}, nil
}

// Field record flags, after the stamp. A header record's fields use the
// first two only.
const (
	flagValue   = 0 // the value follows, to the end
	flagRemoved = 1 // a removal, nothing follows
	// With riders (format 4): flagRidersValue is followed by the value's
	// uvarint length and the value, flagRidersRemoved by nothing; then
	// both by a uvarint count and per rider its key and its field
	// encoding (appendField), each after its uvarint length.
	flagRidersValue   = 2
	flagRidersRemoved = 3
)

// isVersionKey reports whether field key k is a version entry, which
// rides in the field records of user keys.
func isVersionKey(k string) bool { return strings.HasPrefix(k, crdt.VersionKeyPrefix) }

// pastVersionKeys reports whether a walk of a session's keys in order is
// past every version entry at k: they start with a zero byte, and only the
// empty key (which the codec refuses) would sort before them.
func pastVersionKeys(k string) bool { return k != "" && k[0] != crdt.VersionKeyPrefix[0] }

// ridersLen bounds the bytes appendRiders writes for s.
func ridersLen(s *crdt.Session) int {
	n := binary.MaxVarintLen64
	for k, f := range s.Fields.All() {
		if pastVersionKeys(k) {
			break
		}
		if isVersionKey(k) {
			n += 2*binary.MaxVarintLen64 + len(k) + 2*binary.MaxVarintLen64 + 1 + len(f.Value)
		}
	}
	return n
}

// appendFieldRiders appends field record f carrying the version entries
// of s as riders (record.go's format 4).
func appendFieldRiders(b []byte, f crdt.Field, s *crdt.Session) []byte {
	b = binary.AppendUvarint(b, f.TS.Time)
	b = binary.AppendUvarint(b, uint64(f.TS.Node))
	if f.Removed {
		b = append(b, flagRidersRemoved)
	} else {
		b = append(b, flagRidersValue)
		b = binary.AppendUvarint(b, uint64(len(f.Value)))
		b = append(b, f.Value...)
	}
	n := 0
	for k := range s.Fields.All() {
		if pastVersionKeys(k) {
			break
		}
		if isVersionKey(k) {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, rf := range s.Fields.All() {
		if n == 0 {
			break
		}
		if !isVersionKey(k) {
			continue
		}
		n--
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		// The field's encoding is a stamp, a flag and the value: its
		// length is known before it is written.
		l := uvarintLen(rf.TS.Time) + uvarintLen(uint64(rf.TS.Node)) + 1
		if !rf.Removed {
			l += len(rf.Value)
		}
		b = binary.AppendUvarint(b, uint64(l))
		b = appendField(b, rf)
	}
	return b
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decodeFieldRecord decodes a field record of any format: its own field
// and its riders (nil when none), which nextRider reads. The field's value
// is copied; the riders are b's.
func decodeFieldRecord(b []byte) (crdt.Field, []byte, error) {
	t, n := binary.Uvarint(b)
	if n <= 0 {
		return crdt.Field{}, nil, fmt.Errorf("%w: field record truncated", ErrCorrupt)
	}
	b = b[n:]
	node, n := binary.Uvarint(b)
	if n <= 0 || len(b) == n {
		return crdt.Field{}, nil, fmt.Errorf("%w: field record truncated", ErrCorrupt)
	}
	flag, b := b[n], b[n+1:]
	f := crdt.Field{TS: crdt.Timestamp{Time: t, Node: crdt.NodeID(node)}}
	switch flag {
	case flagValue:
		f.Value = string(b)
		return f, nil, nil
	case flagRemoved:
		if len(b) != 0 {
			return crdt.Field{}, nil, fmt.Errorf("%w: bytes after a removal's field record", ErrCorrupt)
		}
		f.Removed = true
		return f, nil, nil
	case flagRidersValue:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return crdt.Field{}, nil, fmt.Errorf("%w: field record: bad value length", ErrCorrupt)
		}
		f.Value, b = string(b[n:n+int(l)]), b[n+int(l):]
	case flagRidersRemoved:
		f.Removed = true
	default:
		return crdt.Field{}, nil, fmt.Errorf("%w: bad field record flag %d", ErrCorrupt, flag)
	}
	if len(b) == 0 {
		return crdt.Field{}, nil, fmt.Errorf("%w: field record: riders missing", ErrCorrupt)
	}
	return f, b, nil
}

// ridersCount reads the count that starts a record's riders.
func ridersCount(b []byte) (int, []byte, error) {
	c, n := binary.Uvarint(b)
	if n <= 0 || c > uint64(len(b)) {
		return 0, nil, fmt.Errorf("%w: field record: bad rider count", ErrCorrupt)
	}
	return int(c), b[n:], nil
}

// nextRider reads one rider: a version entry's key and register.
func nextRider(b []byte) (string, crdt.Field, []byte, error) {
	next := func() ([]byte, error) {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return nil, fmt.Errorf("%w: field record: rider truncated", ErrCorrupt)
		}
		out := b[w : w+int(l)]
		b = b[w+int(l):]
		return out, nil
	}
	k, err := next()
	if err != nil {
		return "", crdt.Field{}, nil, err
	}
	v, err := next()
	if err != nil {
		return "", crdt.Field{}, nil, err
	}
	if !isVersionKey(string(k)) {
		return "", crdt.Field{}, nil, fmt.Errorf("%w: field record: rider %q is not a version entry", ErrCorrupt, k)
	}
	f, err := decodeField(v)
	if err != nil {
		return "", crdt.Field{}, nil, err
	}
	return string(k), f, b, nil
}

// decodeFieldBytes decodes a field register, returning its value in place.
func decodeFieldBytes(b []byte) (ts crdt.Timestamp, removed bool, value []byte, err error) {
	t, n := binary.Uvarint(b)
	if n <= 0 {
		return ts, false, nil, fmt.Errorf("%w: field record truncated", ErrCorrupt)
	}
	b = b[n:]
	node, n := binary.Uvarint(b)
	if n <= 0 || len(b) == n {
		return ts, false, nil, fmt.Errorf("%w: field record truncated", ErrCorrupt)
	}
	b = b[n:]
	ts = crdt.Timestamp{Time: t, Node: crdt.NodeID(node)}
	switch {
	case b[0] == 1 && len(b) == 1:
		return ts, true, nil, nil
	case b[0] == 0:
		return ts, false, b[1:], nil
	}
	return ts, false, nil, fmt.Errorf("%w: bad field record flag %d", ErrCorrupt, b[0])
}

// A session's hash is the XOR of its records' hashes, each over the
// session id and the record's contents, so a write updates it by the
// records it rewrites only. Equal sessions hash equal on every peer
// whichever backend holds them; the id makes equal records of different
// sessions differ, so that they do not cancel in a bucket's digest.

// hashScratch is the stack buffer a record's hash input is built in; a
// longer input (a large value) is streamed instead.
const hashScratch = 256

func headerHash(id string, h header) uint64 {
	var buf [hashScratch]byte
	b := binary.BigEndian.AppendUint16(buf[:0], uint16(len(id)))
	b = append(b, id...)
	b = append(b, kindHeader)
	b = appendIdleStamp(appendHeaderFixed(b, h), h)
	return xxhash.Sum64(b)
}

func fieldHash(id, key string, f crdt.Field) uint64 {
	var buf [hashScratch]byte
	b := binary.BigEndian.AppendUint16(buf[:0], uint16(len(id)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, id...)
	b = append(b, kindField)
	b = append(b, key...)
	b = appendFieldStamp(b, f)
	if f.Removed {
		return xxhash.Sum64(b)
	}
	if len(b)+len(f.Value) <= len(buf) {
		return xxhash.Sum64(append(b, f.Value...))
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(b)
	_, _ = d.WriteString(f.Value)
	return d.Sum64()
}

// sessionHash hashes a whole session; 0 stands for no session.
func sessionHash(s *crdt.Session) uint64 {
	if s == nil {
		return 0
	}
	h := headerHash(s.ID, headerOf(s))
	for k, f := range s.Fields.All() {
		h ^= fieldHash(s.ID, k, f)
	}
	return h
}
