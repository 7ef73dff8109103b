package crdt

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Keys from a domain large enough that overlays fill up and merge into new
// bases, and small enough that writes meet existing keys.
func genKey() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		return fmt.Sprintf("k%03d", rapid.IntRange(0, 120).Draw(t, "key"))
	})
}

func genField() *rapid.Generator[Field] {
	return rapid.Custom(func(t *rapid.T) Field {
		f := Field{TS: genTimestamp().Draw(t, "ts")}
		if rapid.IntRange(0, 4).Draw(t, "removed") == 0 {
			f.Removed = true
		} else {
			f.Value = rapid.SampledFrom([]string{"", "x", "y", "a longer value"}).Draw(t, "value")
		}
		return f
	})
}

// checkFields compares fs with the reference m in every way Fields can be
// read.
func checkFields(t *rapid.T, what string, fs Fields, m map[string]Field) {
	if fs.Len() != len(m) {
		t.Fatalf("%s: Len %d, want %d", what, fs.Len(), len(m))
	}
	var keys []string
	for k, f := range fs.All() {
		keys = append(keys, k)
		if m[k] != f {
			t.Fatalf("%s: All yields %s=%+v, want %+v", what, k, f, m[k])
		}
	}
	if want := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, want) {
		t.Fatalf("%s: All yields keys %v, want %v", what, keys, want)
	}
	if k, ok := fs.FirstKey(); ok != (len(keys) > 0) || ok && k != keys[0] {
		t.Fatalf("%s: FirstKey = %q %v, want the first of %v", what, k, ok, keys)
	}
	var set []string
	for k, v := range fs.Values() {
		set = append(set, k)
		if f := m[k]; f.Removed || f.Value != v {
			t.Fatalf("%s: Values yields %s=%q, want %+v", what, k, v, f)
		}
	}
	want := slices.DeleteFunc(slices.Sorted(maps.Keys(m)), func(k string) bool { return m[k].Removed })
	if !slices.Equal(set, want) {
		t.Fatalf("%s: Values yields keys %v, want %v", what, set, want)
	}
	for _, skip := range []string{"", "k0", "k05", "k120", "z"} {
		checkCopyValues(t, what, fs, m, skip)
	}
	for k, want := range m {
		if got, ok := fs.Get(k); !ok || got != want {
			t.Fatalf("%s: Get(%s) = %+v %v, want %+v", what, k, got, ok, want)
		}
	}
	if _, ok := fs.Get("absent"); ok {
		t.Fatalf("%s: Get of an absent key found it", what)
	}
	if !fs.Equal(FieldsOf(m)) || !FieldsOf(m).Equal(fs) {
		t.Fatalf("%s: not Equal to the same registers built at once", what)
	}
}

// checkCopyValues checks fs.CopyValues(skip) against the reference m: the
// keys that hold a value and do not start with skip, each value a copy
// that its holder may append to or overwrite without touching fs or the
// other values.
func checkCopyValues(t *rapid.T, what string, fs Fields, m map[string]Field, skip string) {
	got := fs.CopyValues(skip)
	want := map[string]string{}
	for k, f := range m {
		if !f.Removed && (skip == "" || !strings.HasPrefix(k, skip)) {
			want[k] = f.Value
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: CopyValues(%q) holds %d keys, want %d", what, skip, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || string(g) != v {
			t.Fatalf("%s: CopyValues(%q)[%s] = %q %v, want %q", what, skip, k, g, ok, v)
		}
	}
	for k, v := range got {
		if cap(v) != len(v) {
			t.Fatalf("%s: CopyValues(%q)[%s] has room beyond its end (len %d cap %d): an append would overwrite the next", what, skip, k, len(v), cap(v))
		}
		for i := range v {
			v[i] = '#'
		}
		got[k] = append(v, '!')
	}
	for k, v := range got {
		if wv, ok := want[k]; ok && string(v) != strings.Repeat("#", len(wv))+"!" {
			t.Fatalf("%s: CopyValues(%q)[%s] = %q after writing every value: the values overlap", what, skip, k, v)
		}
	}
	for k, v := range want {
		if fv, _ := fs.Get(k); fv.Value != v {
			t.Fatalf("%s: writing CopyValues(%q)'s copies changed %s to %q", what, skip, k, fv.Value)
		}
	}
}

// TestFieldsPersistent writes random registers through With and Join,
// keeping every version: each must go on reading as it did when it was
// made, however many versions were made from it since, and every version
// must match a plain map given the same writes.
func TestFieldsPersistent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		type version struct {
			fs Fields
			m  map[string]Field
		}
		versions := []version{{Fields{}, map[string]Field{}}}
		steps := rapid.IntRange(1, 150).Draw(t, "steps")
		for range steps {
			// Branch from any earlier version, not only the last one.
			from := versions[rapid.IntRange(0, len(versions)-1).Draw(t, "from")]
			m := maps.Clone(from.m)
			var fs Fields
			if rapid.IntRange(0, 5).Draw(t, "op") > 0 {
				k, f := genKey().Draw(t, "k"), genField().Draw(t, "f")
				fs = from.fs.With(k, f)
				m[k] = f
			} else {
				o := rapid.MapOfN(genKey(), genField(), 0, 30).Draw(t, "join")
				var changed []string
				fs, changed = from.fs.Join(FieldsOf(o))
				var want []string
				for _, k := range slices.Sorted(maps.Keys(o)) {
					if cur, ok := m[k]; !ok || o[k].Compare(cur) > 0 {
						m[k] = o[k]
						want = append(want, k)
					}
				}
				if !slices.Equal(changed, want) {
					t.Fatalf("Join reports %v changed, want %v", changed, want)
				}
			}
			checkFields(t, "new version", fs, m)
			versions = append(versions, version{fs, m})
		}
		for i, v := range versions {
			checkFields(t, fmt.Sprintf("version %d at the end", i), v.fs, v.m)
		}
	})
}

func TestFieldsBuilder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := rapid.MapOfN(genKey(), genField(), 0, 40).Draw(t, "m")
		var b FieldsBuilder
		for _, k := range slices.Sorted(maps.Keys(m)) {
			f := m[k]
			if rapid.Bool().Draw(t, "bytes") {
				b.AddBytes([]byte(k), []byte(f.Value), f.Removed, f.TS)
			} else {
				b.Add(k, f)
			}
		}
		fs, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		checkFields(t, "built", fs, m)
		// The builder is reset and reusable.
		again, err := b.Build()
		if err != nil || again.Len() != 0 {
			t.Fatalf("second Build: %v, %d fields", err, again.Len())
		}
	})
	var b FieldsBuilder
	b.Add("b", Field{Value: "1", TS: NewTimestamp(1, 0, 1)})
	b.Add("a", Field{Value: "1", TS: NewTimestamp(1, 0, 1)})
	if _, err := b.Build(); err == nil {
		t.Fatal("Build accepted keys out of order")
	}
}

// genWideDelta draws a delta writing several keys of a large domain, so
// that merged states have overlays that fill and compact.
func genWideDelta() *rapid.Generator[*Session] {
	return rapid.Custom(func(t *rapid.T) *Session {
		h := genHeader(t)
		if rapid.IntRange(0, 15).Draw(t, "destroy") == 0 {
			return h.Destroy(genTimestamp().Draw(t, "ts"))
		}
		h.Fields = FieldsOf(rapid.MapOfN(genKey(), genField(), 0, 12).Draw(t, "fields"))
		return h
	})
}

// TestConvergenceWideSessions is TestConvergence with sessions of many
// fields: replicas receiving the same deltas in any order, with
// duplicates, end byte-equal to the naive reference, and merging into a
// clone never changes the state it was cloned from.
func TestConvergenceWideSessions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		deltas := rapid.SliceOfN(genWideDelta(), 1, 25).Draw(t, "deltas")
		want := encode(t, reference(deltas))
		for r := range 3 {
			order := rapid.Permutation(deltas).Draw(t, "order")
			order = append(order, rapid.SliceOfN(rapid.SampledFrom(deltas), 0, 5).Draw(t, "dups")...)
			replica := &Session{ID: genID}
			for _, d := range order {
				before := replica
				frozen := describe(before)
				replica = replica.Clone()
				mustMerge(t, replica, d)
				if describe(before) != frozen {
					t.Fatalf("merging into a clone changed the original")
				}
			}
			if got := encode(t, replica); string(got) != string(want) {
				t.Fatalf("replica %d diverged from reference\n got %s\nwant %s", r, describe(replica), describe(reference(deltas)))
			}
			back, err := UnmarshalSession(want, DefaultLimits())
			if err != nil || !back.Equal(replica) {
				t.Fatalf("decoded state not Equal to the replica: %v", err)
			}
		}
	})
}

// TestParseNodeHex: Version reads back exactly the keys VersionKey writes.
func TestParseNodeHex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		node := rapid.Uint64().Draw(t, "node")
		h := VersionKey(NodeID(node))[len(VersionKeyPrefix):]
		if got, ok := parseNodeHex(h); !ok || got != node {
			t.Fatalf("parseNodeHex(%q) = %x, %v", h, got, ok)
		}
		if up := strings.ToUpper(h); up != h {
			if _, ok := parseNodeHex(up); ok {
				t.Fatalf("accepted upper case %q", up)
			}
		}
	})
	for _, bad := range []string{"", "0", "000000000000000g", "0000000000000000a", "+000000000000000"} {
		if _, ok := parseNodeHex(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestCountPrefix: CountPrefix counts what a walk of All counts, in a
// packed base, an overlay, and both, for prefixes that match a run of
// keys, a single key, every key, or none.
func TestCountPrefix(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		keys := []string{"", "\x00", "\x00sm/", "\x00sm/v/1", "\x00sm/v/2", "\x00sm/o", "\x00x", "a", "ab", "abc", "b"}
		m := map[string]Field{}
		for range rapid.IntRange(0, 8).Draw(t, "base") {
			m[rapid.SampledFrom(keys).Draw(t, "key")] = Field{Value: "v", Removed: rapid.Bool().Draw(t, "removed")}
		}
		fs := FieldsOf(m)
		for range rapid.IntRange(0, 4).Draw(t, "writes") {
			fs = fs.With(rapid.SampledFrom(keys).Draw(t, "wkey"), Field{Value: "w"})
		}
		prefix := rapid.SampledFrom(append(keys, "\x00sm/v/", "z")).Draw(t, "prefix")
		want := 0
		for k := range fs.All() {
			if strings.HasPrefix(k, prefix) {
				want++
			}
		}
		if got := fs.CountPrefix(prefix); got != want {
			t.Fatalf("CountPrefix(%q) = %d, want %d, fields %v", prefix, got, want, fs)
		}
	})
}
