package persist

import "errors"

// Sentinel errors; the returned errors wrap them with detail.
var (
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("persist: store closed")
	// ErrNotFound reports a session the store holds no state for.
	ErrNotFound = errors.New("persist: session not found")
	// ErrForeign reports a directory that holds something other than a
	// sessionmesh store (other files, or another application's Badger data).
	ErrForeign = errors.New("persist: not a sessionmesh store")
	// ErrCorrupt reports store files or records that cannot be read.
	ErrCorrupt = errors.New("persist: store corrupt")
	// ErrBadKey reports an encryption key that is malformed or does not
	// match the one the store was written with.
	ErrBadKey = errors.New("persist: wrong or invalid encryption key")
	// ErrLocked reports a store already opened by another process.
	ErrLocked = errors.New("persist: store in use by another process")
)
