package transport

import "errors"

// Errors returned by the transport. Callers branch on them with errors.Is;
// the returned errors usually wrap them with more context.
var (
	// ErrClosed is returned by every call made after Close.
	ErrClosed = errors.New("transport: closed")

	// ErrTooLarge is returned by Broadcast and Send when the message is
	// longer than Config.MaxMessageBytes. Nothing is sent.
	ErrTooLarge = errors.New("transport: message too large")

	// ErrNotMember is returned when the peer is not in Config.AllowedPeers.
	ErrNotMember = errors.New("transport: peer is not a mesh member")

	// ErrBlocked is returned when the peer has been blocked with Block.
	ErrBlocked = errors.New("transport: peer is blocked")

	// ErrSelf is returned by Send and Connect when the target is this host.
	ErrSelf = errors.New("transport: target is this host")

	// ErrUnknownPeer is returned by Forget when the peer is not a member.
	ErrUnknownPeer = errors.New("transport: unknown peer")

	// ErrInvalidConfig is wrapped by every error of Config.Validate.
	ErrInvalidConfig = errors.New("transport: invalid config")
)
