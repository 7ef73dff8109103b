package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Redial timing of bootstrap peers.
const (
	redialMin    = 250 * time.Millisecond // first retry after a failed dial
	redialMax    = 30 * time.Second       // backoff cap
	redialCheck  = 30 * time.Second       // how often a connected bootstrap peer is re-checked
	stableAfter  = 10 * time.Second       // a connection that lasted this long resets the backoff
	dialTimeout  = 10 * time.Second       // per dial attempt
	unblockTries = 4                      // dials of a formerly connected peer after Unblock
)

// bootPeer is a bootstrap peer and the wake-up signal of its redial loop.
type bootPeer struct {
	info  peer.AddrInfo
	wake  chan struct{} // capacity 1
	reset atomic.Bool   // on wake-up, forget the backoff (set by Unblock)
}

func (bp *bootPeer) wakeUp(reset bool) {
	if reset {
		bp.reset.Store(true)
	}
	select {
	case bp.wake <- struct{}{}:
	default:
	}
}

// jitter spreads d over [d/2, d) so that peers restarting together do not
// redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// bootstrapLoop keeps a connection to one bootstrap peer. It dials when
// the peer is not connected and not blocked, backing off exponentially
// (jittered, capped at redialMax) on failure. A connection that drops
// soon after being made counts as a failure, so a peer that accepts and
// then closes is not redialled in a tight loop.
func (t *Transport) bootstrapLoop(bp *bootPeer) {
	defer t.wg.Done()
	var (
		backoff = redialMin
		next    time.Time // no dial before this
		lastOK  time.Time // last successful dial
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-bp.wake:
		case <-timer.C:
		}
		if bp.reset.Swap(false) {
			backoff, next, lastOK = redialMin, time.Time{}, time.Time{}
		}
		id := bp.info.ID
		now := time.Now()
		wait := redialCheck
		switch {
		case t.gater.isBlocked(id) || t.h.Network().Connectedness(id) == network.Connected:
		case now.Before(next):
			wait = next.Sub(now)
		default:
			err := t.dial(t.ctx, bp.info)
			if t.ctx.Err() != nil {
				return
			}
			if err != nil {
				t.stats.bootDialsFailed.Add(1)
				t.log.Debug("transport: bootstrap dial failed", "peer", id, "retry_in", backoff, "err", err)
				wait = jitter(backoff)
				next = now.Add(wait)
				backoff = min(2*backoff, redialMax)
				break
			}
			t.log.Debug("transport: connected to bootstrap peer", "peer", id)
			if !lastOK.IsZero() && now.Sub(lastOK) < stableAfter {
				backoff = min(2*backoff, redialMax) // it dropped soon after the last dial
			} else {
				backoff = redialMin
			}
			lastOK = now
			// No new dial before the backoff, even if this connection drops at once.
			next = now.Add(jitter(backoff))
		}
		timer.Reset(wait) // since Go 1.23 Reset also discards a pending tick
	}
}

// dial connects to ai, bypassing libp2p's own dial backoff (the callers do
// their own), within dialTimeout.
func (t *Transport) dial(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ctx = network.WithForceDirectDial(ctx, "sessionmesh dial")
	if err := t.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("transport: dial %s: %w", ai.ID, err)
	}
	return nil
}

// redialAfterUnblock dials a peer that was connected before it was
// blocked, a few times with backoff, from the peerstore's addresses.
func (t *Transport) redialAfterUnblock(id peer.ID) {
	backoff := redialMin
	for i := 0; i < unblockTries; i++ {
		if t.ctx.Err() != nil || t.gater.isBlocked(id) || t.tracker.isUp(id) {
			return
		}
		err := t.dial(t.ctx, peer.AddrInfo{ID: id})
		if err == nil {
			return
		}
		t.log.Debug("transport: redial after unblock failed", "peer", id, "err", err)
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(jitter(backoff)):
		}
		backoff *= 2
	}
}

// mdnsServiceName is the DNS-SD service of a mesh: a hash keeps it a valid
// DNS label whatever the mesh name, and hosts of other meshes out of sight.
func mdnsServiceName(mesh string) string {
	sum := sha256.Sum256([]byte(mesh))
	return "_sessionmesh-" + hex.EncodeToString(sum[:8]) + "._udp"
}

// mdnsNotifee dials peers found on the LAN.
type mdnsNotifee struct{ t *Transport }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	t := n.t
	if ai.ID == t.h.ID() || !t.gater.permitted(ai.ID) || t.tracker.isUp(ai.ID) {
		return
	}
	t.spawn(func() {
		if err := t.dial(t.ctx, ai); err != nil {
			t.log.Debug("transport: mDNS dial failed", "peer", ai.ID, "err", err)
		}
	})
}
