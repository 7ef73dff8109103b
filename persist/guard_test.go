package persist

import (
	"errors"
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A guarded delta whose guard the stored state does not meet merges
// nothing: the store reports it (Dropped) and writes nothing, not even the
// blank state of a session it does not hold (a phantom record would keep
// its bucket's digest non-zero and could never be handed off or dropped).
func TestGuardFailedDeltaWritesNothing(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := openStore(t, testOptions(dir))
		d := newSession("absent", 1, t0, 2)
		k, f := crdt.VersionField(crdt.NewTimestamp(t0.UnixMilli()+5, 0, 1))
		d.Fields = d.Fields.With(k, f)
		d.Guard = &crdt.Guard{Need: crdt.Version{{Node: 1, Time: uint64(t0.UnixMilli())}}}
		res := apply(t, s, t0, d)
		if len(res.Changes) != 1 || !res.Changes[0].Dropped || !res.Changes[0].Empty() {
			t.Fatalf("changes = %+v, want one empty Dropped change", res.Changes)
		}
		if _, err := s.Get("absent"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a session that merged nothing reads as %v", err)
		}
		if root := s.Digests().Root; root != (Digests{}).Root {
			t.Fatalf("digest root %x after a delta that merged nothing", root)
		}
	}
}
