package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

// MaxMillis, MaxTimestamp and DataLen read the registers a reader sees,
// as a walk of All does: whether the fields are a packed base alone (a decoded
// delta) or a base with an overlay, and also where the overlay shadows a
// base register of a greater timestamp (With sets a register whatever it
// held: the shadowed one must not count).
func TestMaxStampOfVisibleRegisters(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genHeader(t)
		s.Fields = FieldsOf(rapid.MapOfN(genKey(), genField(), 0, 20).Draw(t, "base"))
		for range rapid.IntRange(0, 12).Draw(t, "writes") {
			s.Fields = s.Fields.With(genKey().Draw(t, "k"), genField().Draw(t, "f"))
		}
		wantMs := max(s.Created.Millis(), s.Destroyed.Millis(), s.IdleTS.Millis(), s.LastAccess)
		wantTS := maxTimestamp(maxTimestamp(s.Created, s.Destroyed), s.IdleTS)
		wantLen := 0
		for k, f := range s.Fields.All() {
			wantLen += len(k) + len(f.Value)
			wantMs = max(wantMs, f.TS.Millis())
			wantTS = maxTimestamp(wantTS, f.TS)
		}
		if got := s.MaxMillis(); got != wantMs {
			t.Fatalf("MaxMillis %d, want %d", got, wantMs)
		}
		if got := s.MaxTimestamp(); got != wantTS {
			t.Fatalf("MaxTimestamp %v, want %v", got, wantTS)
		}
		if got := s.Fields.DataLen(); got != wantLen {
			t.Fatalf("DataLen %d, want %d", got, wantLen)
		}
		packed := *s
		packed.Fields = s.Fields.compact()
		if packed.MaxMillis() != wantMs || packed.MaxTimestamp() != wantTS || packed.Fields.DataLen() != wantLen {
			t.Fatalf("packed: MaxMillis %d, MaxTimestamp %v, DataLen %d, want %d, %v, %d",
				packed.MaxMillis(), packed.MaxTimestamp(), packed.Fields.DataLen(), wantMs, wantTS, wantLen)
		}
	})
	// A shadowed register of a later stamp does not count.
	late, early := NewTimestamp(genBase.UnixMilli()+9, 0, 1), NewTimestamp(genBase.UnixMilli()+1, 0, 1)
	s := &Session{ID: genID, Fields: FieldsOf(map[string]Field{"k": {Value: "v", TS: late}})}
	s.Fields = s.Fields.With("k", Field{Value: "w", TS: early})
	if got := s.MaxTimestamp(); got != early {
		t.Fatalf("MaxTimestamp %v counts a shadowed register, want %v", got, early)
	}
}
