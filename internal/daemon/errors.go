package daemon

import "errors"

// Sentinel errors; returned errors wrap them with detail.
var (
	// ErrConfig reports a setting that cannot be used: a malformed value,
	// an unreadable key file, or settings that contradict each other.
	ErrConfig = errors.New("daemon: invalid configuration")
)
