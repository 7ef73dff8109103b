// Package timing holds the transport's failure-detection and redial
// defaults without importing libp2p, so that the simulator models the
// transport's connection lifecycle from the same values without linking
// libp2p. Package transport re-exports them (transport.DefaultFailureTimeout
// and the others).
package timing

import "time"

const (
	// FailureTimeout: a member silent for 4 s is declared lost (pinged
	// every second, so a cut is noticed within 4 s).
	FailureTimeout = 4 * time.Second

	// RedialInterval: an absent member is dialled about once a second, so
	// a healed link is back within about a second.
	RedialInterval = time.Second

	// DialTimeout bounds one dial attempt: long enough for a TCP and
	// security handshake over a link of up to ~500 ms round trip, short
	// enough that an attempt whose SYN was lost in a cut does not delay
	// the next one much.
	DialTimeout = 2 * time.Second
)
