package crdt

import (
	"errors"
	"strings"
	"testing"
)

// Limits.Check refuses a session with one bad register wherever the bad
// one lies among good ones (first, middle, last key), in a packed base
// and in an overlay: the walk must stop at the first bad register and
// report it, not let a later good one clear the error.
func TestReviewLimitsCheckEveryRegister(t *testing.T) {
	l := DefaultLimits()
	ts := NewTimestamp(genBase.UnixMilli(), 0, 1)
	good := Field{Value: "v", TS: ts}
	bad := map[string]struct {
		key  string
		f    Field
		want error
	}{
		"long key":      {strings.Repeat("k", l.MaxKeyBytes+1), good, ErrTooLarge},
		"long value":    {"", Field{Value: strings.Repeat("v", l.MaxValueBytes+1), TS: ts}, ErrTooLarge},
		"no timestamp":  {"", Field{Value: "v"}, ErrInvalid},
		"removed value": {"", Field{Value: "v", Removed: true, TS: ts}, ErrInvalid},
	}
	for name, b := range bad {
		for _, at := range []string{"a", "m", "z"} {
			key := b.key
			if key == "" {
				key = at
			} else {
				key = at + key[1:]
			}
			m := map[string]Field{"b": good, "n": good, "y": good, key: b.f}
			for form, fs := range map[string]Fields{
				"packed":  FieldsOf(m),
				"overlay": FieldsOf(map[string]Field{"b": good, "n": good, "y": good}).With(key, b.f),
			} {
				s := &Session{ID: "x", Absolute: genBase.UnixMilli() + 1000, Idle: 1000, Created: ts, Fields: fs}
				if err := l.Check(s); !errors.Is(err, b.want) {
					t.Errorf("%s at key %q (%s): Check = %v, want %v", name, at, form, err, b.want)
				}
			}
		}
	}
}
