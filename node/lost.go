package node

import (
	"slices"
	"time"
)

// DeltasLost tells the Core that deltas on their way to peer p were lost:
// a gossip message the transport's queue to p dropped under load, or a
// direct send to p that failed. Anti-entropy would repair them at the next
// periodic round that happens to pick p, a random one of the peers every
// SyncInterval, which in a mesh of nine under load left a large part of the
// copies to rounds minutes later; instead a round with p starts
// lostSyncDelay from the first loss reported, one for a burst of losses.
// A peer not connected is ignored: its reconnection starts a round.
func (c *Core) DeltasLost(now time.Time, p PeerID) {
	ps, ok := c.peers[p]
	if !ok || p == c.self {
		return
	}
	if c.part != nil && !c.sharesSlot(p) {
		return // a round with it compares nothing
	}
	ps.lost = true
	if c.lostSyncAt.IsZero() {
		c.lostSyncAt = now.Add(c.lostSyncDelay())
	}
}

// lostSyncDelay is how long after a loss the round with its peer starts:
// twice settleWindow, so the round, periodic, does not leave the buckets
// of the lost deltas to gossip (it would, were they changed within
// settleWindow), and a burst of losses is repaired by one round.
func (c *Core) lostSyncDelay() time.Duration { return 2 * c.settleWindow() }

// syncLost starts a round with each peer that lost deltas, within
// MaxConcurrentSyncs; the others (and those with a round of this side's
// under way, which may have compared their buckets before the loss) wait
// another lostSyncDelay.
func (c *Core) syncLost(now time.Time) {
	c.lostSyncAt = time.Time{}
	var lost []PeerID
	for id, ps := range c.peers {
		if ps.lost {
			lost = append(lost, id)
		}
	}
	slices.Sort(lost)
	left := false
	for _, p := range lost {
		if len(c.rounds) >= c.cfg.MaxConcurrentSyncs || c.activeWith(p, true) {
			left = true
			continue
		}
		c.peers[p].lost = false
		c.startRound(now, p, true)
		c.m.Add("sync_rounds_after_loss", 1)
	}
	if left {
		c.lostSyncAt = now.Add(c.lostSyncDelay())
	}
}
