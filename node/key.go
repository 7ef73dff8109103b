package node

import (
	"context"
	"unsafe"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Key is a session token with its id (SessionID: a base64 decode and a
// SHA-256) worked out once. A caller that addresses the same sessions
// again and again keeps their Keys and saves that work on every call: the
// Redis front, whose key names map to tokens, spent a quarter of a
// command's CPU on it. The zero Key names no session.
type Key struct {
	token, id string
}

// KeyOf returns the Key of token; false for a string that is not a
// well-formed token.
func KeyOf(token string) (Key, bool) {
	id, ok := SessionID(token)
	if !ok {
		return Key{}, false
	}
	return Key{token: token, id: id}, true
}

// Token returns the key's token.
func (k Key) Token() string { return k.token }

// KeyBytes is the room Key.CopyTo needs: a token and an id.
const KeyBytes = 2 * idLen

// CopyTo returns k with its token and id stored in buf instead of where
// they were, so that a caller caching Keys can keep them in its entry's
// own allocation: a read of a cached Key then touches one run of memory,
// not three (the entry, the token's and the id's allocations), which on a
// key space larger than the CPU's caches is a cache miss saved per read.
// buf must not be modified afterwards. The zero Key copies as itself.
func (k Key) CopyTo(buf *[KeyBytes]byte) Key {
	if len(k.id) != idLen || len(k.token) != idLen {
		return k
	}
	copy(buf[:idLen], k.id)
	copy(buf[idLen:], k.token)
	return Key{id: unsafe.String(&buf[0], idLen), token: unsafe.String(&buf[idLen], idLen)}
}

// GetKey is Get for a Key.
func (n *Node) GetKey(ctx context.Context, k Key) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	if k.id == "" {
		return Session{}, ErrNotFound
	}
	return n.get(ctx, k.id)
}

// StoredKey is Stored for a Key.
func (n *Node) StoredKey(k Key) (*crdt.Session, error) {
	if k.id == "" {
		return nil, ErrNotFound
	}
	return n.stored(k.id)
}

// SaveKey is Save for a Key.
func (n *Node) SaveKey(ctx context.Context, k Key, s Save) error {
	if k.id == "" {
		return ErrNotFound
	}
	return n.mutateID(ctx, k.id, s.op(ctx))
}
