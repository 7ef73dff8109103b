package persist

import (
	"errors"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

func TestCollectGarbage(t *testing.T) {
	o := testOptions("")
	o.MaxDrift = 5 * time.Second
	s := openStore(t, o)
	empty := s.Digests()
	live := newSession("live", 1, t0, 1)                  // deadline t0+1h
	later := newSession("later", 1, t0.Add(time.Hour), 1) // deadline t0+2h
	gone := newSession("gone", 1, t0, 1)
	apply(t, s, t0, live, gone)
	apply(t, s, t0.Add(time.Hour), later)
	apply(t, s, t0, gone.Destroy(crdt.NewTimestamp(t0.UnixMilli()+1, 0, 1)))

	// Before deadline + MaxDrift nothing goes, not even the tombstone.
	if n, err := s.CollectGarbage(t0.Add(time.Hour+4*time.Second), 100); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) before deadline+drift", n, err)
	}
	if got := mustGet(t, s, "gone"); !got.IsDestroyed() {
		t.Fatal("tombstone lost")
	}
	now := t0.Add(time.Hour + 5*time.Second)
	n, err := s.CollectGarbage(now, 100)
	if err != nil || n != 2 {
		t.Fatalf("collected %d (%v), want the expired session and the tombstone", n, err)
	}
	for _, id := range []string{"live", "gone"} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after collection: %v", id, err)
		}
	}
	mustGet(t, s, "later")
	// A stale copy of the collected session cannot come back: its deltas
	// are refused for good.
	res := apply(t, s, now, live.Set("f00", []byte("zombie"), crdt.NewTimestamp(now.UnixMilli(), 0, 3)))
	if len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, crdt.ErrExpired) {
		t.Fatalf("stale delta for a collected session: %+v", res)
	}
	if _, err := s.Get("live"); !errors.Is(err, ErrNotFound) {
		t.Fatal("collected session came back")
	}
	// Digests forget collected sessions.
	other := openStore(t, testOptions(""))
	apply(t, other, t0.Add(time.Hour), later)
	if *s.Digests() != *other.Digests() {
		t.Fatal("digests still count collected sessions")
	}
	if *s.Digests() == *empty {
		t.Fatal("digest of a non-empty store equals the empty one")
	}
}

func TestCollectGarbageBudget(t *testing.T) {
	s := openStore(t, testOptions(""))
	var ds []*crdt.Session
	for i := range 700 {
		ds = append(ds, newSession(string(rune(0x4e00+i)), 1, t0, 0))
	}
	apply(t, s, t0, ds...)
	now := t0.Add(2 * time.Hour)
	total := 0
	for pass := 0; ; pass++ {
		n, err := s.CollectGarbage(now, 300)
		if err != nil {
			t.Fatal(err)
		}
		if n > 300 {
			t.Fatalf("pass removed %d, over its budget of 300", n)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 700 {
		t.Fatalf("collected %d in all, want 700", total)
	}
}

func TestBackgroundGC(t *testing.T) {
	o := testOptions(t.TempDir())
	virtual := t0
	o.Now = func() time.Time { return virtual.Add(2 * time.Hour) }
	o.GCInterval = 10 * time.Millisecond
	s := openStore(t, o)
	apply(t, s, virtual, newSession("bg", 1, virtual, 1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.Get("bg"); errors.Is(err, ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("background GC did not collect an expired session")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
