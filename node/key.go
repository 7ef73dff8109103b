package node

import (
	"context"

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
