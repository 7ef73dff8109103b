package crdt

import (
	"cmp"
	"fmt"
	"time"
)

// NodeID identifies the replica that issued a timestamp. It breaks ties
// between timestamps with the same physical and logical parts, so every
// replica must have a distinct one (the node package derives it from the
// libp2p peer id).
type NodeID uint64

const (
	logicalBits = 16
	logicalMask = 1<<logicalBits - 1
	// MaxMillis is the largest physical time a Timestamp can carry (48 bits of
	// Unix milliseconds, which lasts until the year 10889).
	MaxMillis = 1<<48 - 1
)

// Timestamp is a hybrid logical clock reading. Time packs 48 bits of Unix
// milliseconds above a 16-bit logical counter, so comparing Time compares
// (physical, logical) at once; Node breaks the remaining ties. The zero
// Timestamp is "never" and sorts before every issued one.
type Timestamp struct {
	Time uint64
	Node NodeID
}

// NewTimestamp builds a timestamp from its parts. Milliseconds outside
// [0, MaxMillis] are clamped.
func NewTimestamp(ms int64, logical uint16, node NodeID) Timestamp {
	return Timestamp{Time: packMillis(ms) | uint64(logical), Node: node}
}

func packMillis(ms int64) uint64 {
	if ms < 0 {
		ms = 0
	}
	if ms > MaxMillis {
		ms = MaxMillis
	}
	return uint64(ms) << logicalBits
}

// Millis returns the physical part in Unix milliseconds.
func (t Timestamp) Millis() int64 { return int64(t.Time >> logicalBits) }

// Logical returns the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t.Time & logicalMask) }

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// Compare orders timestamps totally: by physical time, then logical counter,
// then node id. It returns -1, 0 or +1.
func (t Timestamp) Compare(u Timestamp) int {
	if c := cmp.Compare(t.Time, u.Time); c != 0 {
		return c
	}
	return cmp.Compare(t.Node, u.Node)
}

// String formats t as "millis.logical@node" with the node in hex.
func (t Timestamp) String() string {
	return fmt.Sprintf("%d.%d@%x", t.Millis(), t.Logical(), uint64(t.Node))
}

func maxTimestamp(a, b Timestamp) Timestamp {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// Clock is a hybrid logical clock. It never reads the wall clock itself:
// every call takes the caller's physical time, so a simulator can drive it
// with virtual time. A Clock is not safe for concurrent use.
type Clock struct {
	node     NodeID
	maxDrift int64 // milliseconds
	last     uint64
}

// NewClock returns a clock issuing timestamps for node. Remote timestamps more
// than maxDrift ahead of local physical time are refused by Observe.
func NewClock(node NodeID, maxDrift time.Duration) *Clock {
	return &Clock{node: node, maxDrift: maxDrift.Milliseconds()}
}

// Node returns the node id the clock stamps.
func (c *Clock) Node() NodeID { return c.node }

// MaxDrift returns the drift bound the clock enforces.
func (c *Clock) MaxDrift() time.Duration { return time.Duration(c.maxDrift) * time.Millisecond }

// Last returns the latest timestamp issued or observed (Node is this clock's).
func (c *Clock) Last() Timestamp { return Timestamp{Time: c.last, Node: c.node} }

// Now issues a timestamp strictly greater than every timestamp this clock
// has issued or observed, and not behind physical time now. When the physical
// clock stalls or steps back, the logical counter advances instead (and
// carries into the millisecond part after 65535 steps).
func (c *Clock) Now(now time.Time) Timestamp {
	p := packMillis(now.UnixMilli())
	if p > c.last {
		c.last = p
	} else {
		c.last++
	}
	return Timestamp{Time: c.last, Node: c.node}
}

// Observe advances the clock past a remote timestamp, so that local writes
// issued afterwards order after what this replica has seen. A timestamp more
// than MaxDrift ahead of now is refused with an error wrapping ErrClockDrift
// and leaves the clock unchanged: the caller defers what carried it.
func (c *Clock) Observe(ts Timestamp, now time.Time) error {
	if err := CheckDrift(ts.Millis(), now, c.MaxDrift()); err != nil {
		return err
	}
	c.last = max(c.last, ts.Time)
	return nil
}

// CheckDrift reports, wrapping ErrClockDrift, whether the Unix millisecond
// time ms lies more than maxDrift ahead of now.
func CheckDrift(ms int64, now time.Time, maxDrift time.Duration) error {
	limit := now.UnixMilli() + maxDrift.Milliseconds()
	if ms > limit {
		return fmt.Errorf("%w: %s is %v ahead of local time (bound %v)", ErrClockDrift,
			time.UnixMilli(ms).UTC().Format(time.RFC3339Nano),
			time.Duration(ms-now.UnixMilli())*time.Millisecond, maxDrift)
	}
	return nil
}
