package node

import (
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Broadcast batches leave on the leading edge: a delta FlushDelay or more
// after the last batch leaves at once, a closer one waits for the next
// FlushDelay, and a clock stepped back behind the last batch does not hold
// deltas back until it catches up.
func TestFlushLeadingEdge(t *testing.T) {
	cfg := quietConfig()
	start := time.UnixMilli(1_700_000_000_000)
	c, _ := memCore(t, cfg, start)
	clock := crdt.NewClock(1, cfg.MaxDrift)
	delta := func(at time.Time, id string) {
		d := crdt.Create(id, clock.Now(at), at.Add(time.Hour), time.Hour)
		c.LocalDelta(at, d)
	}
	sent := func(want int, when string) {
		t.Helper()
		if got := len(c.Ready().Broadcasts); got != want {
			t.Fatalf("%s: %d broadcasts, want %d", when, got, want)
		}
	}
	d := cfg.FlushDelay
	// Within the first FlushDelay from the start: held, then flushed by
	// the timer.
	delta(start.Add(d/2), "a")
	sent(0, "a delta within FlushDelay of the start")
	if next := c.Next(); !next.Equal(start.Add(d)) {
		t.Fatalf("next tick at %v, want %v", next, start.Add(d))
	}
	c.Tick(start.Add(d))
	sent(1, "the tick at FlushDelay")
	// FlushDelay after that batch: at once.
	at := start.Add(2 * d)
	delta(at, "b")
	sent(1, "a delta FlushDelay after the last batch")
	// Closer than FlushDelay: waits for the gap, with any other.
	delta(at.Add(d/4), "c")
	delta(at.Add(d/2), "d")
	sent(0, "deltas within FlushDelay of the last batch")
	c.Tick(at.Add(d))
	sent(1, "the tick FlushDelay after the last batch")
	// The clock steps back 20 s: the next delta leaves at once.
	delta(at.Add(d-20*time.Second), "e")
	sent(1, "a delta after the clock stepped back")
}

// memCore returns a Core "p0" started at start on an in-memory store of
// its own (cfg's logger and drift bound, no collection timer of the
// store's), for tests that drive one Core by hand.
func memCore(t *testing.T, cfg Config, start time.Time) (*Core, *persist.Store) {
	t.Helper()
	o := persist.InMemoryOptions()
	o.Logger, o.GCInterval, o.MaxDrift = cfg.Logger, 0, cfg.MaxDrift
	st, err := persist.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return NewCore(cfg, "p0", st, 1, 1, start), st
}
