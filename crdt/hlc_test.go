package crdt

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestClockMonotonicUnderAnyPhysicalTime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := NewClock(7, time.Second)
		var prev Timestamp
		steps := rapid.SliceOfN(rapid.Int64Range(-2_000, 2_000), 1, 200).Draw(t, "steps")
		now := genBase
		for _, step := range steps {
			now = now.Add(time.Duration(step) * time.Millisecond) // may go backwards
			ts := c.Now(now)
			if ts.Compare(prev) <= 0 {
				t.Fatalf("Now went from %v to %v", prev, ts)
			}
			if ts.Millis() < now.UnixMilli() {
				t.Fatalf("Now %v behind physical time %d", ts, now.UnixMilli())
			}
			if ts.Node != 7 {
				t.Fatalf("node = %d", ts.Node)
			}
			prev = ts
		}
	})
}

func TestClockObserve(t *testing.T) {
	now := genBase
	c := NewClock(1, 2*time.Second)
	remote := NewTimestamp(now.UnixMilli()+1500, 40, 9)
	if err := c.Observe(remote, now); err != nil {
		t.Fatalf("observe within drift: %v", err)
	}
	if next := c.Now(now); next.Compare(remote) <= 0 || next.Millis() != remote.Millis() || next.Logical() != 41 {
		t.Fatalf("local stamp %v does not order right after observed %v", next, remote)
	}
	before := c.Last()
	far := NewTimestamp(now.UnixMilli()+5000, 0, 9)
	err := c.Observe(far, now)
	if !errors.Is(err, ErrClockDrift) {
		t.Fatalf("observe beyond drift: %v, want ErrClockDrift", err)
	}
	if c.Last() != before {
		t.Fatal("a refused timestamp moved the clock")
	}
	if err := c.Observe(far, now.Add(3*time.Second)); err != nil {
		t.Fatalf("observe once time caught up: %v", err)
	}
}

func TestClockLogicalCarry(t *testing.T) {
	c := NewClock(1, time.Second)
	now := genBase
	var ts Timestamp
	for range 1 << 16 {
		ts = c.Now(now)
	}
	if ts.Millis() != now.UnixMilli() || ts.Logical() != 0xFFFF {
		t.Fatalf("after 65536 stamps in one ms: %v", ts)
	}
	if next := c.Now(now); next.Millis() != now.UnixMilli()+1 || next.Logical() != 0 {
		t.Fatalf("counter overflow did not carry into the millisecond: %v", next)
	}
}

func TestTimestampOrder(t *testing.T) {
	a := NewTimestamp(10, 0, 5)
	b := NewTimestamp(10, 1, 1)
	c := NewTimestamp(10, 1, 2)
	if a.Compare(b) >= 0 || b.Compare(c) >= 0 || c.Compare(c) != 0 || c.Compare(a) <= 0 {
		t.Fatal("timestamps must order by physical, logical, then node")
	}
	if got := NewTimestamp(-5, 0, 1).Millis(); got != 0 {
		t.Fatalf("negative millis clamp to %d", got)
	}
	if !(Timestamp{}).IsZero() || a.IsZero() {
		t.Fatal("IsZero")
	}
	if s := b.String(); s != "10.1@1" {
		t.Fatalf("String = %q", s)
	}
}
