package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Anti-entropy messages travel as direct messages: a version byte, a kind
// byte, then a msgpack array. Gossip messages are crdt batches as they are
// (crdt.MarshalBatch), so a node can tell them apart by the kind byte.
//
// Version 2 streams a round with flow control: every data message (E) is
// numbered and acknowledged (C) once the receiver has stored it, a sender
// keeps at most syncWindow of them unacknowledged, and each side ends with
// the count of what it sent (F), so a lost message fails the round (by
// SyncTimeout) instead of completing it. Version 1 (one-shot bucket dumps)
// is refused.
const wireVersion = 2

const (
	kindRoot    = 'R' // initiator: my root digest
	kindAgree   = 'A' // responder: same root, nothing to do
	kindDigests = 'D' // responder: roots differ, here are my bucket digests
	kindPlan    = 'P' // initiator: the buckets that differ, how to compare each
	kindEntries = 'E' // either side: numbered data (sessions or a bucket summary)
	kindCredit  = 'C' // either side: data message n is stored
	kindFin     = 'F' // either side: I sent all I will, n data messages
	kindAbort   = 'X' // either side: my side of the round failed
	kindBusy    = 'B' // responder: at its round limit, try later (an agreeMsg)
	kindFetch   = 'Q' // a session, please (fetchMsg): session consistency
	kindFetched = 'S' // the session asked for (fetchMsg)
	// Partial replication (partial.go).
	kindHello      = 'H' // my region and replication setting (helloMsg)
	kindHandoff    = 'O' // sessions of slots you hold (handoffMsg)
	kindHandoffAck = 'K' // the handoff Seq is stored (handoffMsg)
	// kindDeltas carries deltas to the peers that hold them, instead of
	// gossip (partial replication, deliverBatch): the header, then a
	// crdt.MarshalBatch batch as it is, no msgpack envelope.
	kindDeltas = 'G'
)

// ErrBadMessage reports a message that is not a valid sessionmesh message.
var ErrBadMessage = errors.New("node: malformed message")

// ErrOldProtocol reports an anti-entropy message of an older protocol
// version, from a peer that needs an upgrade.
var ErrOldProtocol = errors.New("node: anti-entropy protocol version too old")

type rootMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Round    uint64
	Root     uint64
	SentAt   int64 // sender's physical time, Unix ms, for clock offset estimates
}

type agreeMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Round    uint64
	SentAt   int64
}

type digestsMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Round    uint64
	SentAt   int64
	Buckets  []byte // persist.Buckets big-endian uint64 digests
}

type planMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Round    uint64
	// Full: buckets whose sessions both sides send whole (one side holds
	// little or nothing there). Summary: buckets where each side first
	// sends the ids and hashes it holds, and the other answers with what
	// differs.
	Full    []byte
	Summary []byte
}

// Data message payloads.
const (
	payloadSessions = 0 // Batch: crdt.MarshalBatch
	payloadSummary  = 1 // Buckets, Batch: 16 bytes per session (id hash, session hash)
	payloadAnswer   = 2 // Batch: sessions answering a summary
)

type entriesMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Round    uint64
	// FromInitiator tells which side of the round sent it (all messages
	// after the root carry it).
	FromInitiator bool
	Seq           uint32
	Payload       uint8
	// A summary's run of buckets, ascending: the first from after After,
	// the last up to Upto (or its end), those between whole.
	Buckets []int
	After   string
	Upto    string
	Batch   []byte
}

type creditMsg struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Round         uint64
	FromInitiator bool
	Seq           uint32
	// Answers, for a summary, is how many data messages answered it.
	Answers uint32
}

type finMsg struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Round         uint64
	FromInitiator bool
	Total         uint32
}

type abortMsg struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Round         uint64
	FromInitiator bool
	Reason        string
}

// encodeBufs holds encodeMsg's buffers: a message is encoded into one,
// which grows as it must, then copied out at its exact size, rather than
// into a buffer of its own that doubles its way up (a digests message is
// 32 KiB).
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf bounds the buffers encodeBufs keeps, so that one large
// message (a repair chunk) does not stay in memory.
const maxPooledBuf = 256 << 10

func encodeMsg(kind byte, v any) ([]byte, error) {
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			encodeBufs.Put(buf)
		}
	}()
	buf.Reset()
	buf.WriteByte(wireVersion)
	buf.WriteByte(kind)
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, fmt.Errorf("node: encode %c: %w", kind, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// msgDecoder is a decoder with the reader it reads, kept from one message
// to the next (decodeDecoders): a new one cost three allocations, its
// buffers included, for every anti-entropy message.
type msgDecoder struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

var msgDecoders = sync.Pool{New: func() any { return &msgDecoder{dec: msgpack.NewDecoder(nil)} }}

func decodeMsg(data []byte, v any) error {
	// msgpack/v5 (v5.4.1) sizes a decoded slice by the length the message
	// declares, whatever follows: its allocation limit is never applied
	// (decode_slice.go tests its flag against 1). A 20-byte message
	// declaring an array of two billion buckets made a peer allocate 16
	// GB and spend minutes zeroing it (FuzzReceiveDirect). The shape is
	// checked first, so that every length the decoder trusts fits in the
	// message.
	if err := checkShape(data[2:], maxMsgDepth); err != nil {
		return fmt.Errorf("%w: %c: %w", ErrBadMessage, data[1], err)
	}
	md := msgDecoders.Get().(*msgDecoder)
	defer func() {
		md.r.Reset(nil)
		md.dec.Reset(&md.r) // forgets data
		msgDecoders.Put(md)
	}()
	md.r.Reset(data[2:])
	md.dec.Reset(&md.r)
	if err := md.dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %c: %w", ErrBadMessage, data[1], err)
	}
	if md.r.Len() != 0 {
		return fmt.Errorf("%w: %c: trailing bytes", ErrBadMessage, data[1])
	}
	return nil
}

// messageKind returns the kind byte of a message after checking its header.
func messageKind(data []byte) (byte, error) {
	if len(data) < 2 {
		return 0, fmt.Errorf("%w: %d bytes", ErrBadMessage, len(data))
	}
	if data[0] != wireVersion {
		if data[0] < wireVersion && data[0] > 0 {
			return 0, fmt.Errorf("%w: version %d, this peer speaks %d", ErrOldProtocol, data[0], wireVersion)
		}
		return 0, fmt.Errorf("%w: version %d", ErrBadMessage, data[0])
	}
	return data[1], nil
}

// packDigests packs d into the core's digestBytes, valid until the next
// call: send encodes it (a copy) at once.
func (c *Core) packDigests(d *persist.Digests) []byte {
	out := c.digestBuf()[:8*persist.Buckets]
	for i, v := range d.Buckets {
		binary.BigEndian.PutUint64(out[8*i:], v)
	}
	return out
}

// digestBuf returns the core's buffer for a digests message, empty.
func (c *Core) digestBuf() []byte {
	if c.digestBytes == nil {
		c.digestBytes = make([]byte, 8*persist.Buckets)
	}
	return c.digestBytes[:0]
}

func unpackDigests(b []byte) ([persist.Buckets]uint64, error) {
	var out [persist.Buckets]uint64
	if len(b) != 8*persist.Buckets {
		return out, fmt.Errorf("%w: digests of %d bytes, want %d", ErrBadMessage, len(b), 8*persist.Buckets)
	}
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// bucketSet is a bitset over persist.Buckets.
type bucketSet []byte

func newBucketSet() bucketSet      { return make(bucketSet, persist.Buckets/8) }
func (s bucketSet) add(b int)      { s[b/8] |= 1 << (b % 8) }
func (s bucketSet) has(b int) bool { return s[b/8]&(1<<(b%8)) != 0 }
func (s bucketSet) valid() bool    { return len(s) == persist.Buckets/8 }

// each calls fn with every bucket of s, in ascending order. A byte at a
// time: most of a round's sets are a few buckets of 4,096.
func (s bucketSet) each(fn func(b int)) {
	for i, x := range s[:min(len(s), persist.Buckets/8)] {
		for x != 0 {
			fn(8*i + bits.TrailingZeros8(x))
			x &= x - 1
		}
	}
}

func (s bucketSet) count() int {
	n := 0
	for _, b := range s {
		n += bits.OnesCount8(b)
	}
	return n
}

// approxSize estimates a session's encoded size without encoding it, to cut
// batches into chunks.
func approxSize(s *crdt.Session) int {
	return 48 + len(s.ID) + s.Fields.DataLen() + 24*s.Fields.Len()
}

// maxMsgDepth bounds how deeply a message's values may nest: ours nest
// three deep at most, and each level is a frame on the decoder's stack.
const maxMsgDepth = 16

// checkShape reports whether b holds exactly one msgpack value, nested at
// most maxDepth deep, whose every declared length fits in b: a string,
// binary or extension no longer than what is left, an array or map of no
// more values than bytes left (each value takes one at least). It reads b
// once and allocates nothing but its stack of open arrays and maps.
func checkShape(b []byte, maxDepth int) error {
	open := make([]int, 1, 8) // values still to read, per open level
	open[0] = 1
	for len(open) > 0 {
		top := len(open) - 1
		if open[top] == 0 {
			open = open[:top]
			continue
		}
		open[top]--
		if len(b) == 0 {
			return errors.New("truncated")
		}
		c := b[0]
		b = b[1:]
		var size, values int // bytes the value holds, values it contains
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixint, nil, bool: the code is the value
		case c <= 0x8f:
			values = 2 * int(c&0x0f)
		case c <= 0x9f:
			values = int(c & 0x0f)
		case c <= 0xbf:
			size = int(c & 0x1f)
		default:
			switch c {
			case 0xcc, 0xd0:
				size = 1
			case 0xcd, 0xd1:
				size = 2
			case 0xca, 0xce, 0xd2:
				size = 4
			case 0xcb, 0xcf, 0xd3:
				size = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1 to 16, and its type
				size = 1 + 1<<(c-0xd4)
			case 0xc4, 0xd9:
				size, b, err = shapeLen(b, 1)
			case 0xc5, 0xda:
				size, b, err = shapeLen(b, 2)
			case 0xc6, 0xdb:
				size, b, err = shapeLen(b, 4)
			case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: length, type, data
				size, b, err = shapeLen(b, 1<<(c-0xc7))
				size++
			case 0xdc:
				values, b, err = shapeLen(b, 2)
			case 0xdd:
				values, b, err = shapeLen(b, 4)
			case 0xde:
				values, b, err = shapeLen(b, 2)
				values *= 2
			case 0xdf:
				values, b, err = shapeLen(b, 4)
				values *= 2
			default:
				return fmt.Errorf("unknown code 0x%02x", c)
			}
			if err != nil {
				return err
			}
		}
		if size > len(b) {
			return fmt.Errorf("a value of %d bytes with %d left", size, len(b))
		}
		b = b[size:]
		if values > 0 {
			if values > len(b) {
				return fmt.Errorf("%d values declared with %d bytes left", values, len(b))
			}
			if len(open) == maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			open = append(open, values)
		}
	}
	if len(b) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

// shapeLen reads a big-endian length of w bytes from b. No length, of
// bytes or of values, can exceed the bytes after it, which also keeps it
// within an int wherever int is 32 bits.
func shapeLen(b []byte, w int) (int, []byte, error) {
	if len(b) < w {
		return 0, b, errors.New("truncated length")
	}
	var n uint64
	for _, x := range b[:w] {
		n = n<<8 | uint64(x)
	}
	b = b[w:]
	if n > uint64(len(b)) {
		return 0, b, fmt.Errorf("a length of %d with %d bytes left", n, len(b))
	}
	return int(n), b, nil
}
