package node

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
)

// ReservedKeyPrefix starts the field keys that adapters (sessionhttp) keep
// for their own bookkeeping. The node stores them like any other key; the
// HTTP API and the Redis front refuse to write them, so a client cannot
// forge an adapter's state.
const ReservedKeyPrefix = "\x00"

// tokenBytes is the entropy of a session token: 256 bits (OWASP asks for at
// least 64).
const tokenBytes = 32

// tokenLen is the length of a token in unpadded base64url
// (base64.RawURLEncoding.EncodedLen(tokenBytes)).
const tokenLen = 43

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
	var raw [tokenBytes]byte
	if !decodeToken(&raw, token) {
		return false
	}
	sum := sha256.Sum256(raw[:])
	encodeID(id, &sum)
	return true
}

// The token and id codecs are base64.RawURLEncoding for the two fixed
// sizes every read converts, unrolled: the general codec's loops and
// checks cost more than the hash on a machine with SHA instructions.
// TestTokenCodec holds them to encoding/base64 (Strict for decoding).
const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// base64Index maps a byte to its 6 bits, or 0xff for a byte outside the
// alphabet.
var base64Index = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(base64URL) {
		t[base64URL[i]] = uint8(i)
	}
	return t
}()

// decodeToken decodes a token: 43 characters of unpadded base64url whose
// last one leaves no set padding bits (strict: each token has exactly one
// spelling, otherwise several cookie strings open the same session).
func decodeToken(raw *[tokenBytes]byte, token string) bool {
	if len(token) != tokenLen {
		return false
	}
	s := token[:tokenLen]
	var bad uint8
	for i := range 10 {
		a, b, c, d := base64Index[s[4*i]], base64Index[s[4*i+1]], base64Index[s[4*i+2]], base64Index[s[4*i+3]]
		bad |= a | b | c | d
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		raw[3*i], raw[3*i+1], raw[3*i+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	a, b, c := base64Index[s[40]], base64Index[s[41]], base64Index[s[42]]
	bad |= a | b | c
	v := uint32(a)<<12 | uint32(b)<<6 | uint32(c)
	raw[30], raw[31] = byte(v>>10), byte(v>>2)
	return bad&0x80 == 0 && v&3 == 0
}

// encodeID writes the id of a token's hash.
func encodeID(id *[idLen]byte, sum *[sha256.Size]byte) {
	for i := range 10 {
		v := uint32(sum[3*i])<<16 | uint32(sum[3*i+1])<<8 | uint32(sum[3*i+2])
		id[4*i], id[4*i+1], id[4*i+2], id[4*i+3] = base64URL[v>>18], base64URL[v>>12&63], base64URL[v>>6&63], base64URL[v&63]
	}
	v := uint32(sum[30])<<8 | uint32(sum[31])
	id[40], id[41], id[42] = base64URL[v>>10], base64URL[v>>4&63], base64URL[v<<2&63]
}
