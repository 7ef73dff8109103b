package transport

import (
	"context"
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
	BootstrapDialsFailed uint64 // failed dials of bootstrap peers (each is retried)

	// Refused counts inbound connection attempts refused, by reason
	// (Refuse*): each costs us at most a TCP accept and a handshake.
	Refused map[string]uint64

	MembersKnown     int    // members known now (Members)
	MembersConnected int    // of which connected now
	MembersJoined    uint64 // members learned (from bootstrap, records, connections, the member list)
	MembersLost      uint64 // times a connected member's last connection closed
	MembersForgotten uint64 // members dropped, by Forget or after Config.ForgetAfter
	// FailuresDetected counts connections closed because the member gave
	// no sign of life (pings) for Config.FailureTimeout.
	FailuresDetected uint64
	// QuickDrops counts connections that closed within a few seconds of
	// opening: usually the remote refusing us (allowlist, protocol); each
	// doubles the member's redial interval, up to 30 s.
	QuickDrops uint64
	// DialAttempts counts dials of members (every attempt of the redial
	// loop, each bounded by Config.DialTimeout); its rate is the probe
	// traffic, about one per RedialInterval per absent member.
	DialAttempts uint64
	DialsFailed  uint64 // of which failed

	RecordsAccepted uint64            // signed peer records taken from identify and other members
	RecordsRejected map[string]uint64 // records ignored, by reason (Record*)
}

// Reasons for which an inbound connection is refused, as counted in
// Stats.Refused.
const (
	RefuseNotMember   = "not_member"   // authenticated peer not in AllowedPeers
	RefuseBlocked     = "blocked"      // authenticated peer blocked with Block
	RefuseHandshake   = "handshake"    // the security or muxer handshake failed (with a PSK: usually the wrong key)
	RefuseRateLimited = "rate_limited" // too many attempts from that address: closed before any handshake
)

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

	membersJoined    atomic.Uint64
	membersLost      atomic.Uint64
	membersForgotten atomic.Uint64
	failuresDetected atomic.Uint64
	quickDrops       atomic.Uint64
	dialAttempts     atomic.Uint64
	dialsFailed      atomic.Uint64
	recordsAccepted  atomic.Uint64

	mu              sync.Mutex
	rejected        map[string]uint64
	recordsRejected map[string]uint64
	refused         map[string]uint64
}

func (c *counters) rejectRecord(reason string) {
	c.mu.Lock()
	if c.recordsRejected == nil {
		c.recordsRejected = make(map[string]uint64)
	}
	c.recordsRejected[reason]++
	c.mu.Unlock()
}

func (c *counters) refuse(reason string) {
	c.mu.Lock()
	if c.refused == nil {
		c.refused = make(map[string]uint64)
	}
	c.refused[reason]++
	c.mu.Unlock()
}

func cloneOrEmpty(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return maps.Clone(m)
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
	rejected := cloneOrEmpty(c.rejected)
	records := cloneOrEmpty(c.recordsRejected)
	refused := cloneOrEmpty(c.refused)
	c.mu.Unlock()
	return Stats{
		Refused:              refused,
		MembersJoined:        c.membersJoined.Load(),
		MembersLost:          c.membersLost.Load(),
		MembersForgotten:     c.membersForgotten.Load(),
		FailuresDetected:     c.failuresDetected.Load(),
		QuickDrops:           c.quickDrops.Load(),
		DialAttempts:         c.dialAttempts.Load(),
		DialsFailed:          c.dialsFailed.Load(),
		RecordsAccepted:      c.recordsAccepted.Load(),
		RecordsRejected:      records,
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

// keyedLog writes at most one line per key per interval (a key names what
// the line is about: a peer and an event, an address and a reason), and
// reports how many it swallowed for that key in between. It forgets keys
// idle for long, so that it stays small under a flood of distinct keys.
type keyedLog struct {
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	last       time.Time
	suppressed int
}

const keyedLogMax = 4096

func newKeyedLog(log *slog.Logger, interval time.Duration) *keyedLog {
	return &keyedLog{log: log, interval: interval, keys: make(map[string]*keyState)}
}

func (k *keyedLog) allow(key string) (bool, int) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.keys[key]
	if st == nil {
		if len(k.keys) >= keyedLogMax {
			for kk, s := range k.keys {
				if now.Sub(s.last) >= k.interval {
					delete(k.keys, kk)
				}
			}
			if len(k.keys) >= keyedLogMax {
				return false, 0
			}
		}
		st = &keyState{}
		k.keys[key] = st
	} else if now.Sub(st.last) < k.interval {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

func (k *keyedLog) emit(level slog.Level, key, msg string, args ...any) {
	ok, n := k.allow(key)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	k.log.Log(context.Background(), level, msg, args...)
}

func (k *keyedLog) Info(key, msg string, args ...any) { k.emit(slog.LevelInfo, key, msg, args...) }
func (k *keyedLog) Warn(key, msg string, args ...any) { k.emit(slog.LevelWarn, key, msg, args...) }
