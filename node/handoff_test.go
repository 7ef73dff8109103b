package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/internal/placement"
)

// Several handoffs are in flight at once (maxHandoffs), each over slots
// the others do not carry, so no session goes out twice; the Core does not
// tick in a loop while they wait; and once acknowledged every hint is
// handed off and dropped.
func TestHandoffsInFlightTogether(t *testing.T) {
	cfg := quietConfig()
	cfg.Region, cfg.Replicas = "r", 1
	cfg.SyncChunkBytes = 4 << 10 // a few sessions a handoff
	start := time.UnixMilli(1_700_000_000_000)
	c, st := memCore(t, cfg, start)
	c.PeerUp(start, "p1")
	hello, err := encodeMsg(kindHello, &helloMsg{Region: "r", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReceiveDirect(start, "p1", hello); err != nil {
		t.Fatal(err)
	}
	c.Tick(start) // places: p0 and p1 share the slots
	c.Ready()

	// 200 sessions of slots p1 holds, stored here (hints).
	clock := crdt.NewClock(1, cfg.MaxDrift)
	b := crdt.NewBatch()
	for i := 0; b.Len() < 200; i++ {
		id := fmt.Sprintf("hint-%04d-%s", i, strings.Repeat("x", 20))
		if c.part.holds(placement.SlotOf(id)) {
			continue
		}
		s := crdt.Create(id, clock.Now(start), start.Add(time.Hour), time.Hour)
		s.Set("v", []byte(strings.Repeat("v", 900)), clock.Now(start))
		b.Add(s)
	}
	if _, err := st.Apply(b, start); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	now := start
	sent := map[string]int{} // session -> handoffs that carried it
	var pending []uint64     // handoffs sent and not acknowledged
	// step runs the Core until it waits for something it cannot do
	// alone (acknowledgements, or a timer after now).
	step := func() {
		t.Helper()
		for range 100 {
			r := c.Ready()
			for _, op := range r.Storage {
				c.Stored(now, op.Run(ctx, st))
			}
			for _, m := range r.Messages {
				if k, _ := messageKind(m.Data); k != kindHandoff || m.To != "p1" {
					continue
				}
				var hm handoffMsg
				if err := decodeMsg(m.Data, &hm); err != nil {
					t.Fatal(err)
				}
				hb, err := crdt.UnmarshalBatch(hm.Batch, cfg.Limits)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range hb.Sessions() {
					sent[s.ID]++
				}
				pending = append(pending, hm.Seq)
			}
			if len(r.Storage) == 0 && len(r.Messages) == 0 {
				if next := c.Next(); !next.IsZero() && !next.After(now) {
					c.Tick(now)
					continue
				}
				return
			}
		}
		t.Fatal("the Core never waits: it ticks in a loop")
	}
	now = now.Add(2 * cfg.HandoffInterval)
	c.Tick(now)
	step()
	if len(pending) < 2 || len(pending) != maxHandoffs {
		t.Fatalf("%d handoffs in flight, want %d", len(pending), maxHandoffs)
	}
	for id, n := range sent {
		if n != 1 {
			t.Fatalf("session %s went out in %d handoffs at once", id, n)
		}
	}
	if next := c.Next(); !next.After(now) {
		t.Fatalf("Next is %v, not after %v, while the handoffs wait", next, now)
	}
	// Acknowledge as they come until every hint is handed off.
	for round := 0; len(pending) > 0; round++ {
		if round > 200 {
			t.Fatalf("still handing off after %d rounds", round)
		}
		acks := pending
		pending = nil
		for _, seq := range acks {
			ack, err := encodeMsg(kindHandoffAck, &handoffMsg{Seq: seq})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ReceiveDirect(now, "p1", ack); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if len(pending) == 0 && c.Placement().SlotsToHandOff > 0 {
			now = now.Add(2 * cfg.HandoffInterval)
			c.Tick(now)
			step()
		}
	}
	if got := st.Len(); got != 0 {
		t.Errorf("the store keeps %d of the 200 hints after every handoff was acknowledged", got)
	}
	if len(sent) != 200 {
		t.Errorf("%d of 200 hints handed off", len(sent))
	}
}

// Deltas lost on their way to a peer (a gossip queue overflowed, a direct
// send failed) start one round with that peer lostSyncDelay after the
// first loss, whatever the periodic timer says; a peer not connected is
// ignored.
func TestDeltasLostStartsARound(t *testing.T) {
	cfg := quietConfig()
	cfg.SyncInterval = time.Hour // no periodic round in the test
	start := time.UnixMilli(1_700_000_000_000)
	c, _ := memCore(t, cfg, start)
	c.PeerUp(start, "p1")
	c.PeerUp(start, "p2")
	rounds := func() map[PeerID]int {
		out := map[PeerID]int{}
		for _, m := range c.Ready().Messages {
			if k, _ := messageKind(m.Data); k == kindRoot {
				out[m.To]++
			}
		}
		return out
	}
	// The rounds of the new connections, done with.
	rounds()
	for k, r := range c.rounds {
		c.end(start, k, r, "test")
	}
	c.Ready()

	c.DeltasLost(start, "gone") // not connected: nothing
	if !c.lostSyncAt.IsZero() {
		t.Fatal("a loss to a peer not connected set a round")
	}
	at := start.Add(time.Second)
	for i := range 50 {
		c.DeltasLost(at.Add(time.Duration(i)*time.Millisecond), "p1")
	}
	want := at.Add(c.lostSyncDelay())
	if next := c.Next(); !next.Equal(want) {
		t.Fatalf("next tick %v after losses, want %v", next, want)
	}
	c.Tick(want.Add(-time.Millisecond))
	if got := rounds(); len(got) != 0 {
		t.Fatalf("rounds %v before lostSyncDelay", got)
	}
	c.Tick(want)
	if got := rounds(); len(got) != 1 || got["p1"] != 1 {
		t.Fatalf("rounds %v after 50 losses to p1, want one with p1", got)
	}
	if !c.lostSyncAt.IsZero() {
		t.Fatalf("another round pending at %v", c.lostSyncAt)
	}
}
