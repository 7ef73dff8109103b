package sessionhttp

import "errors"

// Sentinel errors; returned errors wrap them with detail.
var (
	// ErrNoSession reports a session call with a context that did not come
	// through LoadAndSave (of this Manager).
	ErrNoSession = errors.New("sessionhttp: no session in context (is the handler wrapped in LoadAndSave?)")
	// ErrEncode reports a value the codec cannot encode. Put returns it and
	// leaves the session unchanged.
	ErrEncode = errors.New("sessionhttp: cannot encode value")
	// ErrDecode reports stored bytes the codec cannot decode.
	ErrDecode = errors.New("sessionhttp: cannot decode value")
	// ErrInvalidKey reports an empty key, one in the reserved namespace
	// (keys starting with a NUL byte), or one longer than the mesh takes
	// (crdt.Limits.MaxKeyBytes, 256 bytes by default).
	ErrInvalidKey = errors.New("sessionhttp: invalid key")
	// ErrTooLarge reports a value over the mesh's bound on one value
	// (crdt.Limits.MaxValueBytes of the node, 64 KiB by default). Put
	// returns it and leaves the session unchanged: it would fail the
	// whole request at commit. A session's values together are bounded
	// too (Limits.MaxSessionBytes, 512 KiB, and node.Config.MaxFields
	// keys): beyond those the commit fails and ErrorFunc answers.
	ErrTooLarge = errors.New("sessionhttp: value over the mesh's size limit")
	// ErrTooLate reports a call that would need a new token to reach the
	// client (RenewToken, or the first Put of a request without a session)
	// after the response header was written. Nothing is changed.
	ErrTooLate = errors.New("sessionhttp: the response header is already written: a new token cannot reach the client")
	// ErrAborted is returned by writes to a response whose session could not
	// be committed: ErrorFunc has answered the request instead.
	ErrAborted = errors.New("sessionhttp: response abandoned after the session failed to commit")
)
