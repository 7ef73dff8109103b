package node

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"unsafe"
)

// ReservedKeyPrefix starts the field keys that adapters (sessionhttp) keep
// for their own bookkeeping. The node stores them like any other key; the
// HTTP API and the Redis front refuse to write them, so a client cannot
// forge an adapter's state.
const ReservedKeyPrefix = "\x00"

// tokenBytes is the entropy of a session token: 256 bits (OWASP asks for at
// least 64).
const tokenBytes = 32

// tokenLen is the length of a token in unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

func newToken(r io.Reader) (string, error) {
	var b [tokenBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("node: new token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// SessionID returns the id under which the session of token is stored and
// replicated: a SHA-256 of the token. Peers never store or send tokens, so a
// copied data directory, a log or a captured delta cannot take a session
// over. It returns false for a string that is not a well-formed token.
func SessionID(token string) (string, bool) {
	var id [idLen]byte
	if !sessionIDTo(token, &id) {
		return "", false
	}
	return string(id[:]), true
}

// idLen is the length of a session id: base64.RawURLEncoding.EncodedLen
// of a SHA-256.
const idLen = 43

// sessionIDTo is SessionID into the caller's array, so that a read, which
// only looks the id up, allocates nothing.
func sessionIDTo(token string, id *[idLen]byte) bool {
	if len(token) != tokenLen {
		return false
	}
	// Decode and hash on the stack. unsafe: Decode only reads its source.
	var raw [tokenBytes + 1]byte
	n, err := strictBase64.Decode(raw[:], unsafe.Slice(unsafe.StringData(token), len(token)))
	if err != nil || n != tokenBytes {
		return false
	}
	sum := sha256.Sum256(raw[:tokenBytes])
	base64.RawURLEncoding.Encode(id[:], sum[:])
	return true
}

// strictBase64 refuses set padding bits, so each token has exactly one
// spelling: otherwise several cookie strings open the same session.
var strictBase64 = base64.RawURLEncoding.Strict()
