// Package placement decides which peers of a region hold a session under
// partial replication (docs/partial-replication.md): a session id falls in
// one of Slots hash slots, the same slots as the store's anti-entropy
// buckets (persist.BucketOf), and each slot's holders in a region are the R
// members with the highest rendezvous (highest-random-weight) score for
// that slot. Every peer that knows the same members computes the same
// holders, and adding or removing a member moves only the slots whose
// top R changed: about R/N of them.
//
// The package is pure: no I/O, no clock, no randomness, and it does not
// depend on the session data types, so the node's state machine and the
// simulator call it with the membership they observed.
package placement
