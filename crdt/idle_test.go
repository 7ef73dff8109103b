package crdt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Lowering the idle timeout is what Redis session stores do on EXPIRE: the
// later write holds on every replica, whichever order they merge in.
func TestSetIdleLowersOnEveryReplica(t *testing.T) {
	now := genBase
	c := Create("id", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(24*time.Hour), time.Hour)
	lower := c.SetIdle(10*time.Second, NewTimestamp(now.UnixMilli()+5, 0, 2))
	// An earlier write of a longer timeout, from a third node, arriving last.
	stale := c.SetIdle(2*time.Hour, NewTimestamp(now.UnixMilli()+3, 0, 3))
	orders := [][]*Session{{c, lower, stale}, {stale, lower, c}, {lower, c, stale}, {lower, stale, c, lower}}
	var want []byte
	for i, order := range orders {
		s := &Session{ID: "id"}
		for _, d := range order {
			mustMerge(t, s, d)
		}
		if s.Idle != 10_000 {
			t.Fatalf("order %d: idle %d ms, want the later write's 10000", i, s.Idle)
		}
		if got, exp := s.ExpiresAt(), now.Add(10*time.Second); !got.Equal(exp) {
			t.Fatalf("order %d: expires at %v, want %v", i, got, exp)
		}
		b := encode(t, s)
		if want == nil {
			want = b
		} else if !bytes.Equal(b, want) {
			t.Fatalf("order %d: replicas differ", i)
		}
	}
	// Merging the lowering reports it; merging it again does not.
	s := c.Clone()
	if ch := mustMerge(t, s, lower); !ch.Retimed || ch.Extended {
		t.Fatalf("lowering reported %+v, want Retimed only", ch)
	}
	if ch := mustMerge(t, s, lower); !ch.Empty() {
		t.Fatalf("duplicate lowering reported %+v", ch)
	}
	// Raising it back later works too, and never past the absolute deadline.
	mustMerge(t, s, s.SetIdle(48*time.Hour, NewTimestamp(now.UnixMilli()+6, 0, 1)))
	if !s.ExpiresAt().Equal(now.Add(24 * time.Hour)) {
		t.Fatalf("expires at %v, want the absolute deadline", s.ExpiresAt())
	}
	// Two writes with the same stamp: the larger timeout, on both sides.
	tie := NewTimestamp(now.UnixMilli()+9, 0, 4)
	a, b := s.Clone(), s.Clone()
	mustMerge(t, a, s.SetIdle(time.Minute, tie))
	mustMerge(t, a, s.SetIdle(2*time.Minute, tie))
	mustMerge(t, b, s.SetIdle(2*time.Minute, tie))
	mustMerge(t, b, s.SetIdle(time.Minute, tie))
	if a.Idle != 120_000 || b.Idle != 120_000 {
		t.Fatalf("tie: idle %d and %d, want 120000", a.Idle, b.Idle)
	}
}

// A session written in format 1 (no idle stamp) decodes with a zero stamp,
// re-encodes as format 2 with the same body, and any stamped write of the
// idle timeout beats it, lower or not.
func TestFormat1SessionsDecode(t *testing.T) {
	now := genBase
	old := sampleSession(2, 5)
	old.IdleTS = Timestamp{}
	v2 := encode(t, old)
	v1 := append([]byte{formatV1}, v2[1:]...)
	got, err := UnmarshalSession(v1, DefaultLimits())
	if err != nil {
		t.Fatalf("format 1 session refused: %v", err)
	}
	if !got.IdleTS.IsZero() || got.Idle != old.Idle || !got.Equal(old) {
		t.Fatalf("format 1 session decoded as %+v", got)
	}
	if again := encode(t, got); !bytes.Equal(again, v2) || again[0] != FormatVersion {
		t.Fatalf("format 1 session re-encodes as %x, want %x", again, v2)
	}
	b, err := MarshalBatch(NewBatch(old), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	b[0] = formatV1
	if _, err := UnmarshalBatch(b, DefaultLimits()); err != nil {
		t.Fatalf("format 1 batch refused: %v", err)
	}
	mustMerge(t, got, got.SetIdle(time.Second, NewTimestamp(now.UnixMilli()+100, 0, 1)))
	if got.Idle != 1000 {
		t.Fatalf("stamped lowering lost to an unstamped timeout: idle %d", got.Idle)
	}
}

func TestIdleStampEncodingIsStrict(t *testing.T) {
	l := DefaultLimits()
	s := sampleSession(1, 3)
	stamped := encode(t, s)
	if _, err := UnmarshalSession(stamped, l); err != nil {
		t.Fatalf("stamped session refused: %v", err)
	}
	// Format 1 has no idle stamp: its 11-element form is malformed.
	v1 := append([]byte{formatV1}, stamped[1:]...)
	if _, err := UnmarshalSession(v1, l); !errors.Is(err, ErrMalformed) {
		t.Fatalf("format 1 with an idle stamp: %v, want ErrMalformed", err)
	}
	// A zero stamp written out is not canonical (it is left out).
	zero := s.Clone()
	zero.IdleTS = Timestamp{}
	body := encode(t, zero)
	var buf bytes.Buffer
	buf.Write(body)
	buf.Bytes()[2] = 0x9b // array of 11 instead of 9
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeUint(0)
	_ = e.EncodeUint(0)
	if _, err := UnmarshalSession(buf.Bytes(), l); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero idle stamp written out: %v, want ErrMalformed", err)
	}
	// A tombstone carries no idle stamp.
	tomb := Tombstone("t", NewTimestamp(genBase.UnixMilli(), 0, 1), genBase.Add(time.Hour))
	tomb.IdleTS = NewTimestamp(genBase.UnixMilli(), 0, 1)
	if err := l.Check(tomb); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tombstone with an idle stamp: %v, want ErrInvalid", err)
	}
	// A far-future idle stamp counts for admission like any other stamp.
	far := s.SetIdle(time.Minute, NewTimestamp(genBase.Add(time.Hour).UnixMilli(), 0, 2))
	if err := Admit(far, genBase, 5*time.Second); !errors.Is(err, ErrClockDrift) {
		t.Fatalf("idle stamp an hour ahead: %v, want ErrClockDrift", err)
	}
	if far.MaxTimestamp() != far.IdleTS {
		t.Fatalf("MaxTimestamp %v ignores the idle stamp %v", far.MaxTimestamp(), far.IdleTS)
	}
}
