package scsstore

import "errors"

// Sentinel errors; returned errors wrap them with detail.
var (
	// ErrToken reports a token that is not 32 bytes in unpadded base64url,
	// the only tokens a node stores. scs's own tokens, and their hashes with
	// HashTokenInStore, always are.
	ErrToken = errors.New("scsstore: token is not 32 bytes of unpadded base64url")
	// ErrNotIterable reports All on a Store without Options.Iterable.
	ErrNotIterable = errors.New("scsstore: iteration needs Options.Iterable")
	// ErrRefused reports a session the node would not create (its limits,
	// or a clock far from the node's).
	ErrRefused = errors.New("scsstore: the node refused the session")
)
