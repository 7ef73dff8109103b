package transport

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons for which an incoming gossip message is rejected, as counted in
// Stats.GossipRejected. Rejections made inside gossipsub (bad signature,
// full validation queue, ...) are counted under gossipsub's own reason
// strings, prefixed with "pubsub: ".
const (
	RejectTooLarge  = "too_large"  // payload longer than Config.MaxMessageBytes
	RejectNotMember = "not_member" // author or forwarder not in Config.AllowedPeers
	RejectBlocked   = "blocked"    // author or forwarder blocked with Block (ignored, not penalised)
	RejectInvalid   = "invalid"    // Config.ValidateGossip returned an error
)

// Stats is a snapshot of the transport's counters. Byte counts are payload
// bytes, without framing or gossipsub envelopes.
type Stats struct {
	GossipPublished     uint64            // Broadcast calls handed to gossipsub
	GossipReceived      uint64            // messages delivered to Handler.HandleGossip
	GossipRejected      map[string]uint64 // incoming messages refused, by reason (Reject*)
	GossipDropped       uint64            // outbound gossipsub RPCs dropped because a peer's queue was full
	GossipUndeliverable uint64            // messages dropped because HandleGossip did not keep up
	GossipBytesOut      uint64
	GossipBytesIn       uint64

	DirectSent       uint64 // frames written by Send
	DirectSendFailed uint64 // Send calls that returned an error after trying to write
	DirectReceived   uint64 // frames delivered to Handler.HandleDirect
	DirectMalformed  uint64 // incoming streams dropped on a malformed, oversized or stalled frame
	DirectBytesOut   uint64
	DirectBytesIn    uint64

	ConnectionsRefused   uint64 // connections (either direction) closed by the gater once the remote was authenticated
	BootstrapDialsFailed uint64 // failed dials of bootstrap peers (each is retried with backoff)
}

type counters struct {
	gossipPublished     atomic.Uint64
	gossipReceived      atomic.Uint64
	gossipDropped       atomic.Uint64
	gossipUndeliverable atomic.Uint64
	gossipBytesOut      atomic.Uint64
	gossipBytesIn       atomic.Uint64

	directSent       atomic.Uint64
	directSendFailed atomic.Uint64
	directReceived   atomic.Uint64
	directMalformed  atomic.Uint64
	directBytesOut   atomic.Uint64
	directBytesIn    atomic.Uint64

	bootDialsFailed atomic.Uint64

	mu       sync.Mutex
	rejected map[string]uint64
}

func (c *counters) reject(reason string) {
	c.mu.Lock()
	if c.rejected == nil {
		c.rejected = make(map[string]uint64)
	}
	c.rejected[reason]++
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	rejected := maps.Clone(c.rejected)
	c.mu.Unlock()
	if rejected == nil {
		rejected = map[string]uint64{}
	}
	return Stats{
		GossipPublished:      c.gossipPublished.Load(),
		GossipReceived:       c.gossipReceived.Load(),
		GossipRejected:       rejected,
		GossipDropped:        c.gossipDropped.Load(),
		GossipUndeliverable:  c.gossipUndeliverable.Load(),
		GossipBytesOut:       c.gossipBytesOut.Load(),
		GossipBytesIn:        c.gossipBytesIn.Load(),
		DirectSent:           c.directSent.Load(),
		DirectSendFailed:     c.directSendFailed.Load(),
		DirectReceived:       c.directReceived.Load(),
		DirectMalformed:      c.directMalformed.Load(),
		DirectBytesOut:       c.directBytesOut.Load(),
		DirectBytesIn:        c.directBytesIn.Load(),
		BootstrapDialsFailed: c.bootDialsFailed.Load(),
	}
}

// rateLimitedLog writes at most one line per interval and reports how many
// lines it swallowed in between.
type rateLimitedLog struct {
	log      *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) Warn(msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}
