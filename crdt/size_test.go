package crdt

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestEncodedSizeMatchesMarshal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "state")
		// Lengths across every msgpack size class.
		if !s.IsDestroyed() {
			for i, l := range rapid.SliceOfN(rapid.SampledFrom([]int{0, 1, 31, 32, 255, 256, 65535, 65536}), 0, 4).Draw(t, "lens") {
				key := strings.Repeat("k", 1+i*17)
				s.Fields = s.Fields.With(key, Field{Value: strings.Repeat("v", l), TS: NewTimestamp(genBase.UnixMilli(), uint16(i), 3)})
			}
		}
		l := DefaultLimits()
		l.MaxValueBytes, l.MaxSessionBytes, l.MaxBatchBytes = 1<<20, 1<<20, 2<<20
		enc, err := MarshalSession(s, l)
		if err != nil {
			t.Fatal(err)
		}
		if got := EncodedSize(s); got != len(enc) {
			t.Fatalf("EncodedSize = %d, encoding has %d bytes", got, len(enc))
		}
	})
	// Field counts across the map header classes.
	s := Create(strings.Repeat("i", 40), NewTimestamp(1<<40, 0, 1<<20), time.UnixMilli(1<<40+1<<20), time.Hour)
	for i := range 20 {
		s.Fields = s.Fields.With(string(rune('a'+i)), Field{Value: "v", TS: s.Created})
		enc, err := MarshalSession(s, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if EncodedSize(s) != len(enc) {
			t.Fatalf("%d fields: EncodedSize = %d, encoding has %d bytes", i+1, EncodedSize(s), len(enc))
		}
	}
}
