package persist

import (
	"errors"
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Drop forgets a copy only while it is the state that was handed off, on
// disk (Badger) and in memory, and keeps the digests exact.
func TestDrop(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := openStore(t, testOptions(dir))
		empty := s.Digests()
		a, b := newSession("handed", 1, t0, 2), newSession("rewritten", 1, t0, 2)
		apply(t, s, t0, a, b)
		ha, hb := SessionHash(mustGet(t, s, "handed")), SessionHash(mustGet(t, s, "rewritten"))
		// "rewritten" is written again after it was handed off.
		c := crdt.NewClock(2, 0)
		apply(t, s, t0, mustGet(t, s, "rewritten").Set("late", []byte("x"), c.Now(t0)))
		n, err := s.Drop([]Handed{{ID: "handed", Hash: ha}, {ID: "rewritten", Hash: hb}, {ID: "absent", Hash: 1}})
		if err != nil || n != 1 {
			t.Fatalf("dir %q: dropped %d (%v), want 1", dir, n, err)
		}
		if _, err := s.Get("handed"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("dir %q: handed-off session after drop: %v", dir, err)
		}
		if v, ok := mustGet(t, s, "rewritten").Get("late"); !ok || string(v) != "x" {
			t.Fatalf("dir %q: a session written after its handoff was dropped", dir)
		}
		if _, err := s.Drop([]Handed{{ID: "rewritten", Hash: SessionHash(mustGet(t, s, "rewritten"))}}); err != nil {
			t.Fatal(err)
		}
		if got := s.Digests(); got.Root != empty.Root || s.Len() != 0 {
			t.Fatalf("dir %q: digests after dropping everything: root %x, %d sessions", dir, got.Root, s.Len())
		}
	}
}
