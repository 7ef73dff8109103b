package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// FormatVersion is the version byte written in front of every encoding.
// Format 2 added the idle timeout's stamp (Session.IdleTS). Decoding also
// reads format 1, whose sessions carry no such stamp (their idle timeout
// was a max-register): they decode with a zero IdleTS, which every stamped
// write of the idle timeout beats. A build that reads only format 1 refuses
// format 2 with ErrVersion.
const FormatVersion = 2

// formatV1 is the previous format, read but no longer written.
const formatV1 = 1

// Kinds of encoded payload, the byte after the version.
const (
	kindSession = 's'
	kindBatch   = 'b'
	// kindGuarded is a batch holding at least one guarded delta: the
	// sessions as in kindBatch, then each one's guard. A build that reads
	// only kindBatch refuses it as malformed (see MarshalBatch).
	kindGuarded = 'g'
)

// Limits bounds what a replica accepts and stores. Decoding enforces them
// before it allocates, so a hostile length prefix costs nothing.
//
// Merging deltas that are each within the limits can produce a state beyond
// them (say, peers on both sides of a partition adding fields to one
// session). Writers should therefore hold local writes well under these
// bounds, so that merged states stay inside them; a delta whose merge would
// still overflow is refused by the store (persist).
type Limits struct {
	MaxIDBytes       int // session id length; default 256
	MaxKeyBytes      int // field key length; default 256
	MaxValueBytes    int // field value length; default 64 KiB
	MaxFields        int // fields in one session or delta, removed ones included; default 1024
	MaxBatchSessions int // sessions in one batch; default 4096
	MaxBatchBytes    int // encoded batch; default 1 MiB (gossipsub's message bound)
	// MaxSessionBytes bounds one encoded session, so that any session fits
	// in a batch and anti-entropy can always carry it; default 512 KiB.
	MaxSessionBytes int
	// MaxLifetime bounds a session's absolute deadline after its create
	// (or destroy) stamp, so that no peer can make a session, or its
	// tombstone, outlive policy; default 400 days.
	MaxLifetime time.Duration
}

// DefaultLimits returns the limits documented on Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxIDBytes:       256,
		MaxKeyBytes:      256,
		MaxValueBytes:    64 << 10,
		MaxFields:        1024,
		MaxBatchSessions: 4096,
		MaxBatchBytes:    1 << 20,
		MaxSessionBytes:  512 << 10,
		MaxLifetime:      400 * 24 * time.Hour,
	}
}

// Validate checks that every bound is positive.
func (l Limits) Validate() error {
	for _, v := range []struct {
		name string
		n    int
	}{{"MaxIDBytes", l.MaxIDBytes}, {"MaxKeyBytes", l.MaxKeyBytes}, {"MaxValueBytes", l.MaxValueBytes},
		{"MaxFields", l.MaxFields}, {"MaxBatchSessions", l.MaxBatchSessions}, {"MaxBatchBytes", l.MaxBatchBytes},
		{"MaxSessionBytes", l.MaxSessionBytes}} {
		if v.n <= 0 {
			return fmt.Errorf("crdt: limits: %s must be positive, got %d", v.name, v.n)
		}
	}
	if l.MaxSessionBytes > l.MaxBatchBytes/2 {
		return fmt.Errorf("crdt: limits: MaxSessionBytes %d must be at most half of MaxBatchBytes %d", l.MaxSessionBytes, l.MaxBatchBytes)
	}
	if l.MaxLifetime <= 0 {
		return fmt.Errorf("crdt: limits: MaxLifetime must be positive")
	}
	return nil
}

// Check reports whether s is well formed and within l. Errors wrap
// ErrInvalid or ErrTooLarge.
func (l Limits) Check(s *Session) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case len(s.ID) > l.MaxIDBytes:
		return fmt.Errorf("%w: id of %d bytes (max %d)", ErrTooLarge, len(s.ID), l.MaxIDBytes)
	case s.Absolute <= 0:
		return fmt.Errorf("%w: session %q has no absolute deadline", ErrInvalid, s.ID)
	case s.Absolute > MaxMillis || s.Idle < 0 || s.Idle > MaxMillis || s.LastAccess < 0 || s.LastAccess > MaxMillis:
		return fmt.Errorf("%w: session %q has a time out of range", ErrInvalid, s.ID)
	}
	stamp := s.Created
	if !s.Destroyed.IsZero() {
		if !s.Created.IsZero() || s.Idle != 0 || !s.IdleTS.IsZero() || s.LastAccess != 0 || s.Fields.Len() != 0 {
			return fmt.Errorf("%w: tombstone %q carries live state", ErrInvalid, s.ID)
		}
		stamp = s.Destroyed
	} else if s.Created.IsZero() {
		return fmt.Errorf("%w: live session %q without a create stamp", ErrInvalid, s.ID)
	}
	if s.Absolute-stamp.Millis() > l.MaxLifetime.Milliseconds() {
		return fmt.Errorf("%w: session %q deadline %v after its stamp (max %v)", ErrTooLarge, s.ID,
			time.Duration(s.Absolute-stamp.Millis())*time.Millisecond, l.MaxLifetime)
	}
	if !s.Destroyed.IsZero() {
		if s.Guard != nil {
			return fmt.Errorf("%w: tombstone %q carries a guard", ErrInvalid, s.ID)
		}
		return nil
	}
	if g := s.Guard; g != nil {
		if len(g.Need) > l.MaxFields {
			return fmt.Errorf("%w: session %q guard of %d entries (max %d)", ErrTooLarge, s.ID, len(g.Need), l.MaxFields)
		}
		for i, e := range g.Need {
			if e.Time == 0 || (i > 0 && g.Need[i-1].Node >= e.Node) {
				return fmt.Errorf("%w: session %q guard entries out of order, repeated or zero", ErrInvalid, s.ID)
			}
		}
	}
	if s.Idle <= 0 {
		return fmt.Errorf("%w: session %q without an idle timeout", ErrInvalid, s.ID)
	}
	if s.Fields.Len() > l.MaxFields {
		return fmt.Errorf("%w: session %q has %d fields (max %d)", ErrTooLarge, s.ID, s.Fields.Len(), l.MaxFields)
	}
	for k, f := range s.Fields.All() {
		switch {
		case k == "":
			return fmt.Errorf("%w: session %q has an empty field key", ErrInvalid, s.ID)
		case len(k) > l.MaxKeyBytes:
			return fmt.Errorf("%w: session %q key of %d bytes (max %d)", ErrTooLarge, s.ID, len(k), l.MaxKeyBytes)
		case len(f.Value) > l.MaxValueBytes:
			return fmt.Errorf("%w: session %q field %q value of %d bytes (max %d)", ErrTooLarge, s.ID, k, len(f.Value), l.MaxValueBytes)
		case f.TS.IsZero():
			return fmt.Errorf("%w: session %q field %q has no timestamp", ErrInvalid, s.ID, k)
		case f.Removed && len(f.Value) != 0:
			return fmt.Errorf("%w: session %q field %q is removed but has a value", ErrInvalid, s.ID, k)
		}
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// MarshalSession encodes s in the wire and storage format. Equal sessions
// encode to equal bytes (fields are written in key order).
func MarshalSession(s *Session, l Limits) ([]byte, error) {
	if err := l.Check(s); err != nil {
		return nil, err
	}
	if s.Guard != nil {
		return nil, fmt.Errorf("%w: session %q: a guarded delta travels in a batch, it is never stored", ErrInvalid, s.ID)
	}
	out, err := marshal(kindSession, func(e *msgpack.Encoder) error { return encodeSession(e, s) })
	if err == nil && len(out) > l.MaxSessionBytes {
		return nil, fmt.Errorf("%w: session %q encodes to %d bytes (max %d)", ErrTooLarge, s.ID, len(out), l.MaxSessionBytes)
	}
	return out, err
}

// MarshalBatch encodes b, sessions in id order. It fails with ErrTooLarge when
// the batch exceeds MaxBatchSessions or MaxBatchBytes: split it first.
//
// A batch holding a guarded delta is written as a kindGuarded payload: the
// sessions as in a plain batch, then an array of their guards (nil for an
// unguarded delta, else 16 bytes per entry: node id and time, big-endian,
// ascending nodes). Builds from before guards existed refuse it as
// malformed: their validator drops the gossip message, and the writes
// reach them by anti-entropy, whose states carry no guard. A batch without
// guards encodes as it always did.
func MarshalBatch(b *Batch, l Limits) ([]byte, error) {
	if b.Len() > l.MaxBatchSessions {
		return nil, fmt.Errorf("%w: batch of %d sessions (max %d)", ErrTooLarge, b.Len(), l.MaxBatchSessions)
	}
	ss := b.Sessions()
	guarded := false
	for _, s := range ss {
		if err := l.Check(s); err != nil {
			return nil, err
		}
		guarded = guarded || s.Guard != nil
	}
	sessions := func(e *msgpack.Encoder) error {
		if err := e.EncodeArrayLen(len(ss)); err != nil {
			return err
		}
		for _, s := range ss {
			if err := encodeSession(e, s); err != nil {
				return err
			}
		}
		return nil
	}
	kind, body := byte(kindBatch), sessions
	if guarded {
		kind = kindGuarded
		body = func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(2); err != nil {
				return err
			}
			if err := sessions(e); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(len(ss)); err != nil {
				return err
			}
			buf := make([]byte, 0, 64) // not nil: an empty guard is an empty byte string
			for _, s := range ss {
				if s.Guard == nil {
					if err := e.EncodeNil(); err != nil {
						return err
					}
					continue
				}
				buf = buf[:0]
				for _, v := range s.Guard.Need {
					buf = binary.BigEndian.AppendUint64(buf, uint64(v.Node))
					buf = binary.BigEndian.AppendUint64(buf, v.Time)
				}
				if err := e.EncodeBytes(buf); err != nil {
					return err
				}
			}
			return nil
		}
	}
	out, err := marshal(kind, body)
	if err == nil && len(out) > l.MaxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes (max %d)", ErrTooLarge, len(out), l.MaxBatchBytes)
	}
	return out, err
}

func marshal(kind byte, body func(*msgpack.Encoder) error) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	buf.WriteByte(FormatVersion)
	buf.WriteByte(kind)
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	if err := body(e); err != nil {
		return nil, fmt.Errorf("crdt: encode: %w", err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// encodeSession writes [id, created.time, created.node, absolute, idle,
// lastAccess, destroyed.time, destroyed.node, {key: [ts.time, ts.node,
// value|nil]}, idleTS.time, idleTS.node] with keys in ascending order. A nil
// value marks a removal. The idle stamp is left out (an array of 9) when it
// is zero: a tombstone, or a session from format 1, which then encodes as
// format 1 did but for the version byte.
func encodeSession(e *msgpack.Encoder, s *Session) error {
	var err error
	put := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	stamped := !s.IdleTS.IsZero()
	put(func() error {
		if stamped {
			return e.EncodeArrayLen(11)
		}
		return e.EncodeArrayLen(9)
	})
	put(func() error { return e.EncodeString(s.ID) })
	for _, v := range []uint64{s.Created.Time, uint64(s.Created.Node), uint64(s.Absolute), uint64(s.Idle),
		uint64(s.LastAccess), s.Destroyed.Time, uint64(s.Destroyed.Node)} {
		put(func() error { return e.EncodeUint(v) })
	}
	put(func() error { return e.EncodeMapLen(s.Fields.Len()) })
	for k, f := range s.Fields.All() {
		put(func() error { return e.EncodeString(k) })
		put(func() error { return e.EncodeArrayLen(3) })
		put(func() error { return e.EncodeUint(f.TS.Time) })
		put(func() error { return e.EncodeUint(uint64(f.TS.Node)) })
		if f.Removed {
			put(e.EncodeNil)
		} else {
			put(func() error { return encodeBin(e, f.Value) })
		}
	}
	if stamped {
		put(func() error { return e.EncodeUint(s.IdleTS.Time) })
		put(func() error { return e.EncodeUint(uint64(s.IdleTS.Node)) })
	}
	return err
}

// encodeBin writes v as a msgpack byte string (bin 8/16/32), the form
// EncodeBytes writes, without converting v to a []byte.
func encodeBin(e *msgpack.Encoder, v string) error {
	var hdr []byte
	switch n := len(v); {
	case n <= math.MaxUint8:
		hdr = []byte{msgpcode.Bin8, byte(n)}
	case n <= math.MaxUint16:
		hdr = binary.BigEndian.AppendUint16([]byte{msgpcode.Bin16}, uint16(n))
	default:
		hdr = binary.BigEndian.AppendUint32([]byte{msgpcode.Bin32}, uint32(n))
	}
	w := e.Writer()
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := io.WriteString(w, v)
	return err
}

// UnmarshalSession decodes one session written by MarshalSession. Decoding
// is strict: only the canonical encoding of a valid session within l is
// accepted (so decoding and re-encoding gives the same bytes), and every
// failure is an error wrapping ErrMalformed, ErrVersion, ErrInvalid or
// ErrTooLarge, never a panic.
func UnmarshalSession(data []byte, l Limits) (*Session, error) {
	if len(data) > l.MaxSessionBytes {
		return nil, fmt.Errorf("%w: session of %d bytes (max %d)", ErrTooLarge, len(data), l.MaxSessionBytes)
	}
	r, err := newReader(data, kindSession)
	if err != nil {
		return nil, err
	}
	defer r.release()
	s, err := r.session(l)
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalBatch decodes a batch written by MarshalBatch, as strictly as
// UnmarshalSession; sessions must appear once each, in ascending id order,
// and a guarded batch must hold at least one guard.
func UnmarshalBatch(data []byte, l Limits) (*Batch, error) {
	if len(data) > l.MaxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes (max %d)", ErrTooLarge, len(data), l.MaxBatchBytes)
	}
	kind := byte(kindBatch)
	if len(data) >= 2 && data[1] == kindGuarded {
		kind = kindGuarded
	}
	r, err := newReader(data, kind)
	if err != nil {
		return nil, err
	}
	defer r.release()
	if kind == kindGuarded {
		if n, err := r.arrayLen(); err != nil || n != 2 {
			if err == nil {
				err = r.errf("guarded batch array of %d elements, want 2", n)
			}
			return nil, err
		}
	}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if n > l.MaxBatchSessions {
		return nil, fmt.Errorf("%w: batch of %d sessions (max %d)", ErrTooLarge, n, l.MaxBatchSessions)
	}
	b := &Batch{}
	ss := b.ones[:0] // a batch of one (most gossip) needs no slice of its own
	if n > 1 {
		// Sized by what the bytes left can hold, not by the count alone:
		// five bytes declaring 4096 sessions allocated room for them.
		hint := min(n, (len(r.b)-r.off)/minSessionBytes)
		b.m = make(map[string]*Session, hint)
		ss = make([]*Session, 0, hint)
	}
	prev := ""
	for i := range n {
		s, err := r.session(l)
		if err != nil {
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
		if i > 0 && strings.Compare(s.ID, prev) <= 0 {
			return nil, fmt.Errorf("%w: session ids out of order or repeated at %q", ErrMalformed, s.ID)
		}
		prev = s.ID
		if b.m != nil {
			b.m[s.ID] = s
		}
		ss = append(ss, s)
	}
	switch {
	case n == 1:
		b.one, b.ones[0] = ss[0], ss[0]
	case n > 1:
		b.sorted = ss // in order, as checked
	}
	if kind == kindGuarded {
		if err := r.guards(ss, l); err != nil {
			return nil, err
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return b, nil
}

// guards reads the guards of a kindGuarded batch into its sessions.
func (r *reader) guards(ss []*Session, l Limits) error {
	m, err := r.arrayLen()
	if err != nil {
		return err
	}
	if m != len(ss) {
		return r.errf("%d guards for %d sessions", m, len(ss))
	}
	// The guards and their entries are decoded into two slices for the
	// whole batch (each guard's entries capped, so that an append to one
	// copies rather than overwrites the next): two allocations per batch
	// where there were two per delta. A first pass counts them, a second,
	// from the same offset, decodes.
	from := r.off
	guards, entries := 0, 0
	for range ss {
		p, isNil, err := r.binOrNil(16 * l.MaxFields)
		if err != nil {
			return err
		}
		if isNil {
			continue
		}
		if len(p)%16 != 0 {
			return r.errf("guard of %d bytes", len(p))
		}
		guards++
		entries += len(p) / 16
	}
	if guards == 0 {
		return r.errf("guarded batch without a guard")
	}
	r.off = from
	var gs []Guard
	var all Version
	if guards == 1 && entries <= len(oneGuard{}.entries) {
		// A batch of one guarded delta (most gossip): one allocation.
		one := new(oneGuard)
		gs, all = one.guard[:0], one.entries[:0:entries]
	} else {
		gs, all = make([]Guard, 0, guards), make(Version, 0, entries)
	}
	for _, s := range ss {
		p, isNil, _ := r.binOrNil(16 * l.MaxFields) // read once above
		if isNil {
			continue
		}
		start := len(all)
		for ; len(p) > 0; p = p[16:] {
			all = append(all, VersionEntry{Node: NodeID(binary.BigEndian.Uint64(p)), Time: binary.BigEndian.Uint64(p[8:])})
		}
		gs = append(gs, Guard{Need: all[start:len(all):len(all)]})
		s.Guard = &gs[len(gs)-1]
		if err := l.Check(s); err != nil {
			return err
		}
	}
	return nil
}

// oneGuard holds a batch's only guard and its entries, when they are few.
type oneGuard struct {
	guard   [1]Guard
	entries [4]VersionEntry
}

// reader is a strict msgpack reader over a byte slice. It accepts exactly the
// forms msgpack.Encoder writes for our types (shortest integer and length
// encodings), so that a decoded value re-encodes to the same bytes (but for
// the version byte of a format-1 payload).
// minSessionBytes is the smallest encoded session: an array header, an id,
// seven numbers and the fields, a byte each at least.
const minSessionBytes = 10

type reader struct {
	b   []byte
	off int
	// version is the payload's format (FormatVersion or formatV1).
	version byte
	// fields is scratch space for a session's fields, from a pool.
	fields *FieldsBuilder
}

var builders = sync.Pool{New: func() any { return new(FieldsBuilder) }}

// release returns the reader's scratch space to the pool, unless a large
// session made it too big to keep.
func (r *reader) release() {
	if r.fields != nil && cap(r.fields.arena) <= 64<<10 {
		r.fields.Reset() // a failed decode leaves entries behind
		builders.Put(r.fields)
	}
	r.fields = nil
}

// newReader returns a reader of data, by value: callers keep it on their
// stack (every gossip message a peer receives is decoded through one).
func newReader(data []byte, kind byte) (reader, error) {
	if len(data) < 2 {
		return reader{}, fmt.Errorf("%w: %d bytes, too short for a header", ErrMalformed, len(data))
	}
	if data[0] != FormatVersion && data[0] != formatV1 {
		return reader{}, fmt.Errorf("%w: %d (this build reads %d and %d)", ErrVersion, data[0], formatV1, FormatVersion)
	}
	if data[1] != kind {
		return reader{}, fmt.Errorf("%w: payload kind %q, want %q", ErrMalformed, data[1], kind)
	}
	return reader{b: data, off: 2, version: data[0]}, nil
}

func (r *reader) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
}

func (r *reader) end() error {
	if r.off != len(r.b) {
		return r.errf("%d trailing bytes", len(r.b)-r.off)
	}
	return nil
}

func (r *reader) next(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, r.errf("want %d bytes, %d left", n, len(r.b)-r.off)
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *reader) code() (byte, error) {
	p, err := r.next(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// length reads a big-endian length of width 1, 2 or 4 and checks that a
// shorter form would not have held it.
func (r *reader) length(width int, floor uint64) (int, error) {
	p, err := r.next(width)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(p[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(p))
	default:
		n = uint64(binary.BigEndian.Uint32(p))
	}
	if n < floor {
		return 0, r.errf("length %d not in shortest form", n)
	}
	if n > math.MaxInt32 {
		// Keeps int conversion exact on 32-bit platforms too.
		return 0, fmt.Errorf("%w: length %d", ErrTooLarge, n)
	}
	return int(n), nil
}

func (r *reader) uint() (uint64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	if msgpcode.IsFixedNum(c) && c <= msgpcode.PosFixedNumHigh {
		return uint64(c), nil
	}
	var width int
	var floor uint64
	switch c {
	case msgpcode.Uint8:
		width, floor = 1, math.MaxInt8+1
	case msgpcode.Uint16:
		width, floor = 2, math.MaxUint8+1
	case msgpcode.Uint32:
		width, floor = 4, math.MaxUint16+1
	case msgpcode.Uint64:
		width, floor = 8, math.MaxUint32+1
	default:
		return 0, r.errf("code %#x is not an unsigned integer", c)
	}
	p, err := r.next(width)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, b := range p {
		n = n<<8 | uint64(b)
	}
	if n < floor {
		return 0, r.errf("integer %d not in shortest form", n)
	}
	return n, nil
}

// millis reads a non-negative millisecond quantity that fits in 48 bits.
func (r *reader) millis() (int64, error) {
	n, err := r.uint()
	if err != nil {
		return 0, err
	}
	if n > MaxMillis {
		return 0, r.errf("time %d out of range", n)
	}
	return int64(n), nil
}

func (r *reader) arrayLen() (int, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case msgpcode.IsFixedArray(c):
		return int(c & msgpcode.FixedArrayMask), nil
	case c == msgpcode.Array16:
		return r.length(2, 16)
	case c == msgpcode.Array32:
		return r.length(4, math.MaxUint16+1)
	}
	return 0, r.errf("code %#x is not an array", c)
}

func (r *reader) mapLen() (int, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case msgpcode.IsFixedMap(c):
		return int(c & msgpcode.FixedMapMask), nil
	case c == msgpcode.Map16:
		return r.length(2, 16)
	case c == msgpcode.Map32:
		return r.length(4, math.MaxUint16+1)
	}
	return 0, r.errf("code %#x is not a map", c)
}

// str reads a string of at most max bytes; what names the string in errors.
func (r *reader) str(max int, what string) (string, error) {
	p, err := r.strBytes(max, what)
	return string(p), err
}

// strBytes is str returning the bytes in place.
func (r *reader) strBytes(max int, what string) ([]byte, error) {
	c, err := r.code()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case msgpcode.IsFixedString(c):
		n = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8:
		n, err = r.length(1, 32)
	case c == msgpcode.Str16:
		n, err = r.length(2, math.MaxUint8+1)
	case c == msgpcode.Str32:
		n, err = r.length(4, math.MaxUint16+1)
	default:
		return nil, r.errf("code %#x is not a string (%s)", c, what)
	}
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: %s of %d bytes (max %d)", ErrTooLarge, what, n, max)
	}
	return r.next(n)
}

// binOrNil reads a byte string of at most max bytes, or nil; the bytes are
// returned in place.
func (r *reader) binOrNil(max int) (v []byte, isNil bool, err error) {
	c, err := r.code()
	if err != nil {
		return nil, false, err
	}
	var n int
	switch c {
	case msgpcode.Nil:
		return nil, true, nil
	case msgpcode.Bin8:
		n, err = r.length(1, 0)
	case msgpcode.Bin16:
		n, err = r.length(2, math.MaxUint8+1)
	case msgpcode.Bin32:
		n, err = r.length(4, math.MaxUint16+1)
	default:
		return nil, false, r.errf("code %#x is not a byte string", c)
	}
	if err != nil {
		return nil, false, err
	}
	if n > max {
		return nil, false, fmt.Errorf("%w: value of %d bytes (max %d)", ErrTooLarge, n, max)
	}
	p, err := r.next(n)
	return p, false, err
}

func (r *reader) session(l Limits) (*Session, error) {
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if n != 9 && (n != 11 || r.version == formatV1) {
		return nil, r.errf("session array of %d elements, want 9 or 11 (format %d)", n, r.version)
	}
	s := &Session{}
	if s.ID, err = r.str(l.MaxIDBytes, "session id"); err != nil {
		return nil, err
	}
	var nums [7]uint64
	for i := range nums {
		if nums[i], err = r.uint(); err != nil {
			return nil, err
		}
	}
	for _, i := range []int{2, 3, 4} {
		if nums[i] > MaxMillis {
			return nil, r.errf("time %d out of range", nums[i])
		}
	}
	s.Created = Timestamp{Time: nums[0], Node: NodeID(nums[1])}
	s.Absolute, s.Idle, s.LastAccess = int64(nums[2]), int64(nums[3]), int64(nums[4])
	s.Destroyed = Timestamp{Time: nums[5], Node: NodeID(nums[6])}
	nf, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	if nf > l.MaxFields {
		return nil, fmt.Errorf("%w: session %q has %d fields (max %d)", ErrTooLarge, s.ID, nf, l.MaxFields)
	}
	// Keys and values go to one allocation (the builder's), the rest of
	// the encoding bounding their size.
	if r.fields == nil {
		r.fields = builders.Get().(*FieldsBuilder)
	}
	fb := r.fields
	fb.Reset()
	fb.Grow(min(len(r.b)-r.off, 4<<10), nf)
	var prev []byte
	for i := range nf {
		k, err := r.strBytes(l.MaxKeyBytes, "field key")
		if err != nil {
			return nil, err
		}
		if i > 0 && bytes.Compare(k, prev) <= 0 {
			return nil, r.errf("field keys out of order or repeated at %q", k)
		}
		prev = k
		if m, err := r.arrayLen(); err != nil || m != 3 {
			if err == nil {
				err = r.errf("field array of %d elements, want 3", m)
			}
			return nil, err
		}
		var ts Timestamp
		if ts.Time, err = r.uint(); err != nil {
			return nil, err
		}
		node, err := r.uint()
		if err != nil {
			return nil, err
		}
		ts.Node = NodeID(node)
		v, removed, err := r.binOrNil(l.MaxValueBytes)
		if err != nil {
			return nil, err
		}
		fb.AddBytes(k, v, removed, ts)
	}
	if s.Fields, err = fb.Build(); err != nil {
		return nil, err
	}
	if n == 11 {
		if s.IdleTS.Time, err = r.uint(); err != nil {
			return nil, err
		}
		node, err := r.uint()
		if err != nil {
			return nil, err
		}
		s.IdleTS.Node = NodeID(node)
		if s.IdleTS.IsZero() {
			return nil, r.errf("zero idle stamp written out (the canonical form leaves it out)")
		}
	}
	if err := l.Check(s); err != nil {
		return nil, err
	}
	return s, nil
}
