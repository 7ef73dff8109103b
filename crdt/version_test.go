package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

func genVersion() *rapid.Generator[Version] {
	return rapid.Custom(func(t *rapid.T) Version {
		var v Version
		for node := range NodeID(4) {
			if rapid.Bool().Draw(t, "has") {
				v = append(v, VersionEntry{Node: node + 1, Time: rapid.Uint64Range(1, 4).Draw(t, "time")})
			}
		}
		return v
	})
}

func TestVersionJoinIsALattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genVersion().Draw(t, "a"), genVersion().Draw(t, "b"), genVersion().Draw(t, "c")
		if !a.Join(b).Equal(b.Join(a)) {
			t.Fatalf("join not commutative: %v %v", a, b)
		}
		if !a.Join(b).Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("join not associative")
		}
		if !a.Join(a).Equal(a) {
			t.Fatalf("join not idempotent: %v", a)
		}
		ab := a.Join(b)
		if !ab.Covers(a) || !ab.Covers(b) {
			t.Fatalf("%v does not cover its parts %v %v", ab, a, b)
		}
		// Covers is the lattice order: a covers b iff a⊔b = a.
		if a.Covers(b) != a.Join(b).Equal(a) {
			t.Fatalf("Covers(%v, %v) = %v disagrees with the join", a, b, a.Covers(b))
		}
		if a.Covers(b) != (len(a.Missing(b)) == 0) {
			t.Fatalf("Missing(%v, %v) = %v disagrees with Covers", a, b, a.Missing(b))
		}
	})
}

func TestVersionStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genVersion().Draw(t, "v")
		got, err := ParseVersion(v.String())
		if err != nil || !got.Equal(v) {
			t.Fatalf("ParseVersion(%q) = %v, %v; want %v", v.String(), got, err, v)
		}
	})
	one := Version{{Node: 0xdeadbeef, Time: NewTimestamp(1_700_000_000_000, 3, 1).Time}}
	if n := len(one.String()); n != 23 {
		t.Errorf("a one-entry version is %d characters, want 23", n)
	}
	for _, bad := range []string{
		"x", "AQ", // bad base64 / too short
		Version{{Node: 2, Time: 1}, {Node: 1, Time: 1}}.String(), // out of order
		Version{{Node: 1, Time: 0}}.String(),                     // zero time
		Version{{Node: 1, Time: 1}}.String() + "A",               // trailing bits
	} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

// The version of a session, read from its version registers, is monotone
// under merge: the join of two states covers the version of each, and is
// the join of their versions.
func TestSessionVersionJoins(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genVersioned().Draw(t, "a"), genVersioned().Draw(t, "b")
		ab := join(t, a, b)
		if ab.IsDestroyed() {
			return
		}
		if want := a.Version().Join(b.Version()); !ab.Version().Equal(want) {
			t.Fatalf("version of the join %v, want %v", ab.Version(), want)
		}
	})
}

// genVersioned draws a state whose writes also stamp its version, as the
// node's writes do.
func genVersioned() *rapid.Generator[*Session] {
	return rapid.Custom(func(t *rapid.T) *Session {
		s := genHeader(t)
		for range rapid.IntRange(0, 4).Draw(t, "writes") {
			ts := genTimestamp().Draw(t, "ts")
			d := s.Set(rapid.SampledFrom([]string{"a", "b"}).Draw(t, "key"), []byte("x"), ts)
			k, f := VersionField(ts)
			d.Fields = d.Fields.With(k, f)
			mustMerge(t, s, d)
		}
		return s
	})
}

func TestVersionIgnoresForeignKeys(t *testing.T) {
	s := Create("s", NewTimestamp(1000, 0, 1), genBase.Add(1e12), 1e12)
	ts := NewTimestamp(1000, 1, 7)
	k, f := VersionField(ts)
	s.Fields = s.Fields.With(k, f)
	s.Fields = s.Fields.With(VersionKeyPrefix+"ABC", Field{TS: ts})
	s.Fields = s.Fields.With(VersionKeyPrefix+"00000000000000FF", Field{TS: ts})
	s.Fields = s.Fields.With("\x00sm/w", Field{TS: ts})
	if v := s.Version(); !v.Equal(Version{{Node: 7, Time: ts.Time}}) {
		t.Fatalf("version %v, want only node 7's entry", v)
	}
}

// ParseVersion reads what clients send (a cookie, a header): it must never
// panic, and what it accepts must be canonical (String gives the input
// back), so that one version has one spelling.
func FuzzParseVersion(f *testing.F) {
	f.Add("")
	f.Add(Version{{Node: 1, Time: 2}}.String())
	f.Add(Version{{Node: 1, Time: 2}, {Node: 9, Time: 1 << 40}}.String())
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("accepted %q, which encodes back as %q", s, v.String())
		}
	})
}
