package persist

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// testdata/format2.backup was written by the build before the idle stamp
// (commit 25af0b0's parent, persist format 2): 50 sessions s00..s49 created
// by node 7 at format2Now with field k = index, idle timeout 10+index
// minutes, a version entry, a deadline 300 days on; and a tombstone "gone".
var format2Now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// The real previous build's backup restores; its sessions read unstamped;
// a lowered idle timeout stamped since beats them and survives a reopen,
// and an unstamped larger one (a format-1 peer's) does not undo it.
func TestRestoreBackupOfPreviousBuild(t *testing.T) {
	s, o := restoreBackup(t, "format2.backup")
	// The previous build's digest root of the same data: peers of both
	// builds compare equal data as equal.
	if r := s.Digests().Root; r != 15905789344371512671 {
		t.Fatalf("digest root %d, the previous build had 15905789344371512671", r)
	}
	for i := range 50 {
		got := mustGet(t, s, fmt.Sprintf("s%02d", i))
		v, ok := got.Get("k")
		if !ok || v != fmt.Sprint(i) || got.Idle != int64(10+i)*60_000 || !got.IdleTS.IsZero() || len(got.Version()) != 1 {
			t.Fatalf("s%02d read as k=%q idle %d stamp %v version %v", i, v, got.Idle, got.IdleTS, got.Version())
		}
	}
	if g := mustGet(t, s, "gone"); !g.IsDestroyed() {
		t.Fatalf("the tombstone read back live")
	}
	legacy := mustGet(t, s, "s00")
	c := crdt.NewClock(2, 5*time.Second)
	at := format2Now.Add(time.Minute)
	apply(t, s, at, legacy.SetIdle(time.Minute, c.Now(at)))
	old := legacy.Header()
	old.Idle = int64(time.Hour / time.Millisecond) // unstamped, larger
	apply(t, s, at, old)
	if got := mustGet(t, s, "s00"); got.Idle != 60_000 || got.IdleTS.IsZero() {
		t.Fatalf("lowered idle timeout read as %d ms stamped %v", got.Idle, got.IdleTS)
	}
	root := s.Digests().Root
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	if got := mustGet(t, s, "s00"); got.Idle != 60_000 || got.IdleTS.IsZero() {
		t.Fatalf("after reopen: idle %d ms stamped %v", got.Idle, got.IdleTS)
	}
	if r := s.Digests().Root; r != root {
		t.Fatalf("digest root %x after reopen, was %x", r, root)
	}
}
