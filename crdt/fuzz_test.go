package crdt

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// The decoders must never panic, and whatever they accept must be canonical:
// re-encoding gives back the input bytes exactly, but for the version byte
// of a format-1 input, which re-encodes as the current format.

// sameEncoding reports whether again is data re-encoded canonically.
func sameEncoding(data, again []byte) bool {
	if len(data) > 0 && data[0] == formatV1 {
		data = append([]byte{FormatVersion}, data[1:]...)
	}
	return bytes.Equal(again, data)
}

func FuzzUnmarshalSession(f *testing.F) {
	for _, s := range fuzzSeeds() {
		b, err := MarshalSession(s, DefaultLimits())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if s.IdleTS.IsZero() {
			// The same session as format 1 wrote it.
			f.Add(append([]byte{formatV1}, b[1:]...))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSession(data, DefaultLimits())
		if err != nil {
			return
		}
		again, err := MarshalSession(s, DefaultLimits())
		if err != nil {
			t.Fatalf("decoded session does not re-encode: %v", err)
		}
		if !sameEncoding(data, again) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", data, again)
		}
	})
}

func FuzzUnmarshalBatch(f *testing.F) {
	b, err := MarshalBatch(NewBatch(fuzzSeeds()...), DefaultLimits())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{FormatVersion, kindBatch, 0x90})
	var guarded []*Session
	for i, s := range fuzzSeeds() {
		if !s.IsDestroyed() {
			s.Guard = &Guard{}
			if i%2 == 1 {
				s.Guard.Need = Version{{Node: 1, Time: 5}, {Node: 9, Time: 7}}
			}
		}
		guarded = append(guarded, s)
	}
	if g, err := MarshalBatch(NewBatch(guarded...), DefaultLimits()); err != nil {
		f.Fatal(err)
	} else {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBatch(data, DefaultLimits())
		if err != nil {
			return
		}
		again, err := MarshalBatch(b, DefaultLimits())
		if err != nil {
			t.Fatalf("decoded batch does not re-encode: %v", err)
		}
		if !sameEncoding(data, again) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", data, again)
		}
	})
}

func fuzzSeeds() []*Session {
	now := genBase
	s := Create("a", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(time.Hour), time.Minute)
	out := []*Session{s}
	big := sampleSession(10, 90)
	big.ID = "b"
	out = append(out, big)
	lowered := s.Clone()
	lowered.ID = "l"
	_, _ = lowered.Merge(lowered.SetIdle(time.Second, NewTimestamp(now.UnixMilli()+2, 0, 2)))
	legacy := s.Clone()
	legacy.ID, legacy.IdleTS = "o", Timestamp{}
	out = append(out, lowered, legacy)
	r := s.Clone()
	r.ID = "c"
	_, _ = r.Merge(r.Remove("k", NewTimestamp(now.UnixMilli()+1, 3, 1<<60)))
	out = append(out, r)
	for i := range 3 {
		out = append(out, Tombstone(fmt.Sprintf("t%d", i), NewTimestamp(now.UnixMilli(), uint16(i), 2), now.Add(time.Hour)))
	}
	return out
}
