package node

import "errors"

// Sentinel errors; returned errors wrap them with detail.
var (
	// ErrNotFound reports a token with no visible session: never issued,
	// expired or destroyed. The three are not told apart on purpose.
	ErrNotFound = errors.New("node: session not found")
	// ErrUnavailable reports a read of a session this peer does not hold
	// (partial replication) and has no copy of, that no holder answered
	// (none connected, or none within ConsistencyWait): the peer cannot
	// tell whether the session exists. Retry, or read on another peer;
	// treating it as ErrNotFound would log out a live session.
	ErrUnavailable = errors.New("node: no holder of the session answered")
	// ErrClosed reports a call on a closed node.
	ErrClosed = errors.New("node: closed")
	// ErrTooManyFields reports a write that would give a session more
	// fields than Config.MaxFields.
	ErrTooManyFields = errors.New("node: too many fields in session")
	// ErrExists reports a create under a token (WithToken) whose session
	// already exists.
	ErrExists = errors.New("node: session exists")
	// ErrDestroyed reports a create under a token (WithToken) whose session
	// was destroyed: a destroyed id is never used again.
	ErrDestroyed = errors.New("node: session destroyed")
	// ErrInvalid reports an argument the node cannot accept (empty key,
	// value over the size limit, non-positive lifetime, ...).
	ErrInvalid = errors.New("node: invalid argument")
	// ErrStale reports a call made with a version (WithVersion) that this
	// peer's copy of the session did not reach within
	// Config.ConsistencyWait, neither by replication nor by asking the
	// peers that wrote it: answering would show the client older data than
	// it has seen. Retrying later, or on another peer, may succeed.
	ErrStale = errors.New("node: session version not available on this peer")
)

// Anti-entropy errors (Node.Sync, Core.StartSync).
var (
	// ErrUnknownPeer reports a sync with a peer that is not connected (or,
	// for any peer, that none is).
	ErrUnknownPeer = errors.New("node: peer not connected")
	// ErrSyncBusy reports a sync refused because MaxConcurrentSyncs rounds
	// are running.
	ErrSyncBusy = errors.New("node: too many anti-entropy rounds running")
)
