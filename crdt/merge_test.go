package crdt

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestMergeCommutative(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genState().Draw(t, "a"), genState().Draw(t, "b")
		assertSameBytes(t, "a⊔b vs b⊔a", join(t, a, b), join(t, b, a))
	})
}

func TestMergeAssociative(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genState().Draw(t, "a"), genState().Draw(t, "b"), genState().Draw(t, "c")
		assertSameBytes(t, "(a⊔b)⊔c vs a⊔(b⊔c)", join(t, join(t, a, b), c), join(t, a, join(t, b, c)))
	})
}

func TestMergeIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genState().Draw(t, "a"), genState().Draw(t, "b")
		ab := join(t, a, b)
		again := ab.Clone()
		if ch := mustMerge(t, again, b); !ch.Empty() {
			t.Fatalf("re-merging a delta reported a change: %+v", ch)
		}
		assertSameBytes(t, "(a⊔b)⊔b vs a⊔b", again, ab)
		assertSameBytes(t, "a⊔a vs a", join(t, a, a), a)
	})
}

// reference computes the expected join of deltas the naive way: a tombstone
// if any delta destroys, else per component maxima, the idle timeout of the
// latest stamp (the larger timeout on equal stamps) and per key the greatest
// write under Field.Compare.
func reference(ds []*Session) *Session {
	out := &Session{ID: genID}
	fields := map[string]Field{}
	var destroyed Timestamp
	for _, d := range ds {
		out.Absolute = max(out.Absolute, d.Absolute)
		if d.Destroyed.Compare(destroyed) > 0 {
			destroyed = d.Destroyed
		}
	}
	if !destroyed.IsZero() {
		return &Session{ID: genID, Absolute: out.Absolute, Destroyed: destroyed}
	}
	for _, d := range ds {
		if d.Created.Compare(out.Created) > 0 {
			out.Created = d.Created
		}
		if c := d.IdleTS.Compare(out.IdleTS); c > 0 || c == 0 && d.Idle > out.Idle {
			out.Idle, out.IdleTS = d.Idle, d.IdleTS
		}
		out.LastAccess = max(out.LastAccess, d.LastAccess)
		for k, f := range d.Fields.All() {
			if cur, ok := fields[k]; !ok || f.Compare(cur) > 0 {
				fields[k] = f
			}
		}
	}
	out.Fields = FieldsOf(fields)
	return out
}

// TestConvergence delivers the same deltas to N replicas, each in its own
// order, with duplicates, and with some deltas lost at first and redelivered
// at the end (as anti-entropy would). Every replica must end equal, byte for
// byte, to the naive reference.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		deltas := rapid.SliceOfN(genDelta(), 1, 12).Draw(t, "deltas")
		want := encode(t, reference(deltas))
		n := rapid.IntRange(2, 5).Draw(t, "replicas")
		for r := range n {
			order := rapid.Permutation(deltas).Draw(t, "order")
			dups := rapid.SliceOfN(rapid.SampledFrom(deltas), 0, 4).Draw(t, "dups")
			lost := rapid.SliceOfNDistinct(rapid.IntRange(0, len(order)-1), 0, len(order), rapid.ID).Draw(t, "lost")
			var first, later []*Session
			for i, d := range order {
				if slices.Contains(lost, i) {
					later = append(later, d)
				} else {
					first = append(first, d)
				}
			}
			stream := append(append(first, dups...), later...)
			replica := &Session{ID: genID}
			for _, d := range stream {
				mustMerge(t, replica, d)
			}
			if got := encode(t, replica); string(got) != string(want) {
				t.Fatalf("replica %d diverged from reference\n got %s\nwant %s", r, describe(replica), describe(reference(deltas)))
			}
		}
	})
}

// TestDestroyIsFinal: once a destroy is merged, no delta of any kind or
// timestamp makes the session visible again.
func TestDestroyIsFinal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "state")
		mustMerge(t, s, s.Destroy(genTimestamp().Draw(t, "destroy")))
		later := rapid.SliceOf(genDelta()).Draw(t, "later")
		for _, d := range later {
			// Later writes may carry any timestamp, even far in the future.
			if f, ok := d.Fields.Get("a"); ok {
				f.TS.Time += 1 << 40
				d.Fields = d.Fields.With("a", f)
			}
			mustMerge(t, s, d)
			if !s.IsDestroyed() || s.Visible(genBase) || s.Fields.Len() != 0 {
				t.Fatalf("session came back after destroy: %s", describe(s))
			}
		}
	})
}

func TestExpiry(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "state")
		now := genBase.Add(time.Duration(rapid.Int64Range(-5, 12_000).Draw(t, "now")) * time.Millisecond)
		deadline := min(s.Absolute, s.LastAccess+s.Idle)
		want := !s.IsDestroyed() && !s.Created.IsZero() && now.UnixMilli() < deadline
		if got := s.Visible(now); got != want {
			t.Fatalf("Visible(%d) = %v, want %v for %s", now.UnixMilli(), got, want, describe(s))
		}
		if !s.IsDestroyed() {
			// Touch only moves forward: an older touch changes nothing.
			before := s.LastAccess
			ch := mustMerge(t, s, s.Touch(time.UnixMilli(before-1)))
			if ch.Touched || s.LastAccess != before {
				t.Fatalf("an older touch moved LastAccess from %d to %d", before, s.LastAccess)
			}
			ch = mustMerge(t, s, s.Touch(time.UnixMilli(before+10)))
			if !ch.Touched || s.LastAccess != before+10 {
				t.Fatalf("a newer touch did not move LastAccess: %+v", ch)
			}
		}
	})
}

func TestExpiryBoundaries(t *testing.T) {
	created := genBase
	s := Create("id", NewTimestamp(created.UnixMilli(), 0, 1), created.Add(time.Hour), 10*time.Minute)
	cases := []struct {
		at      time.Duration
		visible bool
	}{{0, true}, {10*time.Minute - time.Millisecond, true}, {10 * time.Minute, false}}
	for _, c := range cases {
		if got := s.Visible(created.Add(c.at)); got != c.visible {
			t.Errorf("visible at +%v = %v, want %v", c.at, got, c.visible)
		}
	}
	// Touching keeps it alive past the first idle window, but never past
	// the absolute deadline.
	mustMerge(t, s, s.Touch(created.Add(55*time.Minute)))
	if !s.Visible(created.Add(59 * time.Minute)) {
		t.Error("touched session expired early")
	}
	if s.Visible(created.Add(time.Hour)) {
		t.Error("session visible at its absolute deadline")
	}
	if !s.ExpiresAt().Equal(created.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v", s.ExpiresAt())
	}
}

func TestMergeReportsChanges(t *testing.T) {
	now := genBase
	s := &Session{ID: "id"}
	c := Create("id", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(time.Hour), time.Minute)
	if ch := mustMerge(t, s, c); !ch.Created {
		t.Fatalf("create not reported: %+v", ch)
	}
	d1 := s.Set("b", []byte("1"), NewTimestamp(now.UnixMilli()+1, 0, 1))
	d2 := s.Set("a", []byte("2"), NewTimestamp(now.UnixMilli()+1, 0, 2))
	b := NewBatch(d1, d2)
	if b.Len() != 1 {
		t.Fatalf("batch joined by id should hold 1 session, has %d", b.Len())
	}
	ch := mustMerge(t, s, b.Get("id"))
	if !slices.Equal(ch.Fields, []string{"a", "b"}) {
		t.Fatalf("changed fields = %v", ch.Fields)
	}
	if ch := mustMerge(t, s, d1); !ch.Empty() {
		t.Fatalf("duplicate reported %+v", ch)
	}
	// An older write loses and is not reported.
	if ch := mustMerge(t, s, s.Set("a", []byte("old"), NewTimestamp(now.UnixMilli(), 0, 9))); !ch.Empty() {
		t.Fatalf("stale write reported %+v", ch)
	}
	if v, _ := s.Get("a"); string(v) != "2" {
		t.Fatalf("a = %q", v)
	}
	// Removal wins a tie on (physical, logical) over a value from a higher node.
	tie := NewTimestamp(now.UnixMilli()+5, 0, 1)
	mustMerge(t, s, s.Set("a", []byte("v"), NewTimestamp(now.UnixMilli()+5, 0, 9)))
	mustMerge(t, s, s.Remove("a", tie))
	if _, ok := s.Get("a"); ok {
		t.Fatal("removal lost a tie to a value")
	}
	if !slices.Equal(s.Keys(), []string{"b"}) {
		t.Fatalf("keys = %v", s.Keys())
	}
	if ch := mustMerge(t, s, s.Destroy(NewTimestamp(now.UnixMilli()+6, 0, 1))); !ch.Destroyed {
		t.Fatalf("destroy not reported: %+v", ch)
	}
	if _, err := s.Merge(&Session{ID: "other"}); !errors.Is(err, ErrIDMismatch) {
		t.Fatalf("merging another id: %v", err)
	}
}

func TestMutatorsDoNotModifyReceiver(t *testing.T) {
	now := genBase
	s := Create("id", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(time.Hour), time.Minute)
	before := encode(t, s)
	ts := NewTimestamp(now.UnixMilli()+1, 0, 1)
	s.Set("k", []byte("v"), ts)
	s.Remove("k", ts)
	s.Touch(now.Add(time.Second))
	s.Destroy(ts)
	if string(encode(t, s)) != string(before) {
		t.Fatal("a mutator modified its receiver")
	}
}

func TestAdmit(t *testing.T) {
	now := genBase
	drift := 5 * time.Second
	s := Create("id", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(time.Hour), time.Minute)
	if err := Admit(s.Set("k", []byte("v"), NewTimestamp(now.Add(drift).UnixMilli(), 0, 2)), now, drift); err != nil {
		t.Fatalf("delta at the drift bound refused: %v", err)
	}
	future := s.Set("k", []byte("v"), NewTimestamp(now.Add(drift+time.Millisecond).UnixMilli(), 0, 2))
	if err := Admit(future, now, drift); !errors.Is(err, ErrClockDrift) {
		t.Fatalf("future delta: %v, want ErrClockDrift", err)
	}
	// Deferred, not lost: once local time catches up it is admitted.
	if err := Admit(future, now.Add(time.Millisecond), drift); err != nil {
		t.Fatalf("future delta still refused after time caught up: %v", err)
	}
	if err := Admit(s.Touch(now.Add(time.Hour)), now, drift); !errors.Is(err, ErrClockDrift) {
		t.Fatalf("touch far ahead: %v, want ErrClockDrift", err)
	}
	if err := Admit(s.Destroy(NewTimestamp(now.UnixMilli(), 1, 1)), now.Add(time.Hour), drift); !errors.Is(err, ErrExpired) {
		t.Fatalf("delta at the absolute deadline: %v, want ErrExpired", err)
	}
	if s.Collectable(now.Add(time.Hour), drift) || !s.Collectable(now.Add(time.Hour+drift), drift) {
		t.Fatal("Collectable must hold from absolute deadline + MaxDrift on")
	}
}
