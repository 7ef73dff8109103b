package node

import (
	"context"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A clock stepped back (ClockStepped, as the simulator reports its clock
// faults) moves the core's timers with it: the deferred delta's periodic
// retry, the flush, the anti-entropy and collection schedules fire after
// the interval they were set for, not the step later. What has wall-clock
// meaning stays: the retried delta, still beyond the drift bound of the
// stepped clock, is deferred again, and the HLC keeps its last stamp.
func TestClockSteppedMovesTimers(t *testing.T) {
	cfg := quietConfig()
	start := time.UnixMilli(1_700_000_000_000)
	c, st := memCore(t, cfg, start)
	c.PeerUp(start, "p1")
	c.Recycle(c.Ready())
	// store carries out a Ready's storage and reports the results; it
	// returns the deltas the store deferred.
	store := func(now time.Time, r Ready) (deferred []*crdt.Session, applies int) {
		for _, op := range r.Storage {
			res := op.Run(context.Background(), st)
			if op.Kind == StoreApply {
				applies++
				deferred = append(deferred, res.Apply.Deferred...)
			}
			c.Stored(now, res)
		}
		return deferred, applies
	}

	// A peer whose clock is 5 s beyond the drift bound sends a delta:
	// deferred, retried every second.
	at := start.Add(10 * time.Second)
	remote := crdt.NewClock(2, time.Hour)
	d := crdt.Create("ahead", remote.Now(at.Add(cfg.MaxDrift+5*time.Second)), at.Add(time.Hour), time.Hour)
	c.ReceiveGossipBatch(at, "p1", crdt.NewBatch(d))
	if def, _ := store(at, c.Ready()); len(def) != 1 {
		t.Fatalf("%d deltas deferred, want 1", len(def))
	}
	// Two local writes: the first leaves at once, the second waits for
	// the flush.
	c.LocalDelta(at, crdt.Create("mine", c.Stamp(at), at.Add(time.Hour), time.Hour))
	c.LocalDelta(at, crdt.Create("mine2", c.Stamp(at), at.Add(time.Hour), time.Hour))
	if c.flushAt.IsZero() || c.retryAt.IsZero() {
		t.Fatalf("timers not pending: flushAt %v, retryAt %v", c.flushAt, c.retryAt)
	}
	c.Recycle(c.Ready())
	before := map[string]time.Time{"flushAt": c.flushAt, "retryAt": c.retryAt, "nextSync": c.nextSync, "nextGC": c.nextGC}
	next, stamp := c.Next(), c.clock.Last()

	// 100 ms later the clock steps back 20 s.
	step := -20 * time.Second
	now := at.Add(100 * time.Millisecond).Add(step)
	c.ClockStepped(step)
	after := map[string]time.Time{"flushAt": c.flushAt, "retryAt": c.retryAt, "nextSync": c.nextSync, "nextGC": c.nextGC}
	for name, t0 := range before {
		if got := after[name]; !got.Equal(t0.Add(step)) {
			t.Errorf("%s at %v after the step, want %v (%v before it)", name, got, t0.Add(step), t0)
		}
	}
	if got := c.Next(); !got.Equal(next.Add(step)) {
		t.Errorf("next tick at %v, want %v", got, next.Add(step))
	}
	if c.clock.Last() != stamp {
		t.Errorf("the HLC moved with the step: %v, was %v", c.clock.Last(), stamp)
	}

	// The retry fires a second after the delta arrived, on the stepped
	// clock (not 20 s later), and the delta, now 25 s beyond the bound
	// of that clock, is deferred again: admission follows the wall clock.
	retry := before["retryAt"].Add(step)
	if got := c.Next(); got.After(retry) {
		t.Fatalf("next tick at %v, after the retry's %v", got, retry)
	}
	for tick := c.Next(); !tick.After(retry); tick = c.Next() {
		if tick.Before(now) {
			tick = now
		}
		c.Tick(tick)
		now = tick
		def, applies := store(now, c.Ready())
		if applies > 0 {
			if len(def) != 1 || def[0].ID != "ahead" {
				t.Fatalf("the retry at %v deferred %d deltas, want the one beyond the bound", now, len(def))
			}
			if !now.Before(retry.Add(time.Millisecond)) || now.Before(retry) {
				t.Fatalf("retried at %v, want %v", now, retry)
			}
			if want := now.Add(time.Second); !c.retryAt.Equal(want) {
				t.Fatalf("next retry at %v, want %v", c.retryAt, want)
			}
			return
		}
		if c.Next().Equal(tick) {
			t.Fatalf("core wants a tick at %v again", tick)
		}
	}
	t.Fatalf("no retry by %v", retry)
}

// Under partial replication the placement, handoff and hello timers move
// with a step too, and a member's time down counts from when it went down.
func TestClockSteppedMovesPartialTimers(t *testing.T) {
	cfg := quietConfig()
	cfg.Region, cfg.Replicas = "r", 1
	start := time.UnixMilli(1_700_000_000_000)
	c, _ := memCore(t, cfg, start)
	c.PeerUp(start, "p1")
	hello, err := encodeMsg(kindHello, &helloMsg{Region: "r", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReceiveDirect(start, "p1", hello); err != nil {
		t.Fatal(err)
	}
	at := start.Add(time.Second)
	c.PeerDown(at, "p1") // placement waits HolderGrace for it
	c.Tick(at)           // places, the expiry set
	c.replace(at)        // and a placement due again
	p := c.part
	before := []time.Time{p.expiry, p.placeAt, p.nextHandoff, p.nextHello, c.hellos["p1"].downAt}
	for i, t0 := range before {
		if t0.IsZero() {
			t.Fatalf("timer %d not pending", i)
		}
	}
	step := -20 * time.Second
	c.ClockStepped(step)
	after := []time.Time{p.expiry, p.placeAt, p.nextHandoff, p.nextHello, c.hellos["p1"].downAt}
	for i, t0 := range before {
		if !after[i].Equal(t0.Add(step)) {
			t.Errorf("timer %d at %v after the step, want %v", i, after[i], t0.Add(step))
		}
	}
	// The down member leaves placement HolderGrace after it went down,
	// on the stepped clock.
	if got, want := c.placementMembers(at.Add(step).Add(cfg.HolderGrace-time.Millisecond), "r"), 2; len(got) != want {
		t.Errorf("%d placement members just before HolderGrace, want %d", len(got), want)
	}
	if got, want := c.placementMembers(at.Add(step).Add(cfg.HolderGrace), "r"), 1; len(got) != want {
		t.Errorf("%d placement members at HolderGrace, want %d", len(got), want)
	}
}
