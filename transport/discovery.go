package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// dialTimeout bounds a dial made by Connect or mDNS, and the opening of a
// stream.
const dialTimeout = 10 * time.Second

// dial connects to ai, bypassing libp2p's own dial backoff (the callers do
// their own), within dialTimeout.
func (t *Transport) dial(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ctx = network.WithForceDirectDial(ctx, "sessionmesh dial")
	t.stats.dialAttempts.Add(1)
	if err := t.h.Connect(ctx, ai); err != nil {
		t.stats.dialsFailed.Add(1)
		return fmt.Errorf("transport: dial %s: %w", ai.ID, err)
	}
	return nil
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
