package crdt

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors
// wrap them with detail.
var (
	// ErrClockDrift reports a timestamp further ahead of local physical time
	// than the clock's MaxDrift. It is not a permanent refusal: the caller
	// should defer the delta and merge it once local time has caught up
	// (anti-entropy offers it again).
	ErrClockDrift = errors.New("crdt: timestamp beyond allowed clock drift")
	// ErrExpired reports a delta for a session whose absolute deadline has
	// passed. Such a delta can never make a session visible again, so it is
	// refused for good; this is what lets tombstones be collected.
	ErrExpired = errors.New("crdt: session past its absolute deadline")
	// ErrInvalid reports a session or delta that breaks a structural rule
	// (empty id, fields on a destroyed session, missing deadline, ...).
	ErrInvalid = errors.New("crdt: invalid session")
	// ErrTooLarge reports data beyond a configured Limits bound.
	ErrTooLarge = errors.New("crdt: over size limit")
	// ErrMalformed reports bytes that are not a valid encoding.
	ErrMalformed = errors.New("crdt: malformed encoding")
	// ErrVersion reports an encoding written in an unknown format version.
	ErrVersion = errors.New("crdt: unknown format version")
	// ErrIDMismatch reports a merge of two different sessions.
	ErrIDMismatch = errors.New("crdt: session id mismatch")
)
