package node

import (
	"testing"
	"time"
)

// Sustained loss to one peer that never answers (every round with it
// times out) starts at most one round per lostSyncDelay, none while one is
// still open, and none once the losses stop: lost-delta repair is bounded
// by its debounce, not a round per loss.
func TestReviewSustainedLossBounded(t *testing.T) {
	cfg := quietConfig()
	cfg.SyncInterval = time.Hour // no periodic round in the test
	start := time.UnixMilli(1_700_000_000_000)
	c, _ := memCore(t, cfg, start)
	c.PeerUp(start, "p1")
	c.PeerUp(start, "p2")
	c.Ready()
	for k, r := range c.rounds {
		c.end(start, k, r, "test")
	}
	c.Ready()
	rounds := map[PeerID]int{}
	take := func() {
		for _, m := range c.Ready().Messages {
			if k, _ := messageKind(m.Data); k == kindRoot {
				rounds[m.To]++
			}
		}
	}
	const lossFor = 60 * time.Second
	now := start
	for now.Before(start.Add(lossFor)) {
		c.DeltasLost(now, "p1")
		c.Tick(now)
		take()
		now = now.Add(10 * time.Millisecond)
	}
	period := max(c.lostSyncDelay(), cfg.SyncTimeout)
	limit := int(lossFor/period) + 1
	if rounds["p1"] == 0 || rounds["p1"] > limit {
		t.Fatalf("%d rounds with p1 over %v of losses every 10 ms (lostSyncDelay %v, SyncTimeout %v), want 1..%d",
			rounds["p1"], lossFor, c.lostSyncDelay(), cfg.SyncTimeout, limit)
	}
	if rounds["p2"] != 0 {
		t.Fatalf("%d rounds with p2, which lost nothing", rounds["p2"])
	}
	t.Logf("%d rounds with p1 over %v (lostSyncDelay %v, SyncTimeout %v)", rounds["p1"], lossFor, c.lostSyncDelay(), cfg.SyncTimeout)
	// Losses stop: after the last pending one, no more rounds.
	end := now.Add(c.lostSyncDelay() + cfg.SyncTimeout)
	for ; now.Before(end); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		take()
	}
	before := rounds["p1"]
	for ; now.Before(end.Add(time.Minute)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		take()
	}
	if rounds["p1"] != before {
		t.Fatalf("%d more rounds with p1 a minute after the losses stopped", rounds["p1"]-before)
	}
}
