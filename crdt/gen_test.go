package crdt

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Generators draw from small domains on purpose: few keys, nodes and times,
// so that ties between timestamps, values and removals come up often.

const genID = "sess"

var genBase = time.UnixMilli(1_700_000_000_000)

func genTimestamp() *rapid.Generator[Timestamp] {
	return rapid.Custom(func(t *rapid.T) Timestamp {
		ms := genBase.UnixMilli() + rapid.Int64Range(0, 5).Draw(t, "ms")
		return NewTimestamp(ms, uint16(rapid.IntRange(0, 2).Draw(t, "logical")), NodeID(rapid.IntRange(1, 3).Draw(t, "node")))
	})
}

func genHeader(t *rapid.T) *Session {
	h := &Session{
		ID:         genID,
		Created:    genTimestamp().Draw(t, "created"),
		Absolute:   genBase.UnixMilli() + rapid.Int64Range(10_000, 10_002).Draw(t, "absolute"),
		Idle:       genIdle().Draw(t, "idle"),
		LastAccess: genBase.UnixMilli() + rapid.Int64Range(0, 5).Draw(t, "lastAccess"),
	}
	// Most headers carry a stamped idle timeout; some an unstamped one, as
	// sessions decoded from format 1 do.
	if rapid.IntRange(0, 3).Draw(t, "idleStamped") > 0 {
		h.IdleTS = genTimestamp().Draw(t, "idleTS")
	}
	return h
}

// genIdle draws idle timeouts on both sides of each other, so that writes
// lower it as often as they raise it.
func genIdle() *rapid.Generator[int64] {
	return rapid.SampledFrom([]int64{500, 1_000, 1_001, 1_002})
}

// genDelta draws one delta of any kind for the session genID.
func genDelta() *rapid.Generator[*Session] {
	return rapid.Custom(func(t *rapid.T) *Session {
		h := genHeader(t)
		ts := genTimestamp().Draw(t, "ts")
		key := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "key")
		switch rapid.IntRange(0, 10).Draw(t, "kind") {
		case 0:
			return h
		case 10:
			return h.SetIdle(time.Duration(genIdle().Draw(t, "setIdle"))*time.Millisecond, ts)
		case 1, 2, 3, 4:
			return h.Set(key, []byte(rapid.SampledFrom([]string{"", "x", "y"}).Draw(t, "value")), ts)
		case 5, 6:
			return h.Remove(key, ts)
		case 7, 8:
			return h.Touch(genBase.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "touch")) * time.Millisecond))
		default:
			return h.Destroy(ts)
		}
	})
}

// genState draws a replica state: the join of a few deltas.
func genState() *rapid.Generator[*Session] {
	return rapid.Custom(func(t *rapid.T) *Session {
		ds := rapid.SliceOfN(genDelta(), 1, 6).Draw(t, "deltas")
		s := ds[0].Clone()
		for _, d := range ds[1:] {
			mustMerge(t, s, d)
		}
		return s
	})
}

func mustMerge(t interface{ Fatalf(string, ...any) }, s, d *Session) Change {
	ch, err := s.Merge(d)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	return ch
}

func encode(t interface{ Fatalf(string, ...any) }, s *Session) []byte {
	b, err := MarshalSession(s, DefaultLimits())
	if err != nil {
		t.Fatalf("marshal %+v: %v", s, err)
	}
	return b
}

func join(t interface{ Fatalf(string, ...any) }, ss ...*Session) *Session {
	out := ss[0].Clone()
	for _, s := range ss[1:] {
		mustMerge(t, out, s)
	}
	return out
}

func assertSameBytes(t *rapid.T, what string, a, b *Session) {
	if ea, eb := encode(t, a), encode(t, b); !bytes.Equal(ea, eb) {
		t.Fatalf("%s: replicas differ\n%s\n%s", what, describe(a), describe(b))
	}
}

func describe(s *Session) string {
	return fmt.Sprintf("%+v", *s)
}

func TestGeneratorsProduceValidSessions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "s")
		if err := DefaultLimits().Check(s); err != nil {
			t.Fatalf("generated state fails Check: %v", err)
		}
	})
}
