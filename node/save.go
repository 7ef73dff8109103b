package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Save is a write as key-value session stores make it (the Redis front's
// SET ... EX, HSET, EXPIRE): fields written and removed, the idle timeout
// set, and the access recorded, all in one delta.
type Save struct {
	// Set writes fields; Remove removes them.
	Set    map[string][]byte
	Remove []string
	// IdleTimeout, when positive, sets the session's idle timeout to
	// exactly it, lower or higher than before: the idle timeout is a
	// last-writer-wins register (crdt.Session.SetIdle), so of concurrent
	// saves the later one holds on every peer. The session still ends at
	// its absolute deadline. Zero leaves the idle timeout alone.
	IdleTimeout time.Duration
	// Touch records an access at the node's current time.
	Touch bool
}

// Save applies s to the visible session of token in one delta, replicated
// like Update. It fails with ErrNotFound when the session is not visible.
func (n *Node) Save(ctx context.Context, token string, s Save) error {
	return n.mutate(ctx, token, s.op(ctx))
}

// op is the local operation of s.
func (s Save) op(ctx context.Context) LocalOp {
	return LocalOp{Kind: OpSave, Set: s.Set, Remove: s.Remove, IdleTimeout: s.IdleTimeout, Touch: s.Touch,
		Versioned: versionOf(ctx) != nil}
}

// Retire destroys the session of token in whatever state this node holds
// it (live, expired, past its deadline, or not at all), and keeps its
// tombstone until at least keepUntil, everywhere. The Redis front uses it
// when a key is written again after its session ended: the ended session
// must outlive its successor so that lookups find the chain intact.
func (n *Node) Retire(ctx context.Context, token string, keepUntil time.Time) error {
	id, ok := SessionID(token)
	if !ok {
		return fmt.Errorf("%w: token is not 256 bits of base64url", ErrInvalid)
	}
	if now := n.cfg.Clock.Now(); !keepUntil.After(now) {
		return fmt.Errorf("%w: tombstone deadline %s is not in the future", ErrInvalid, keepUntil.UTC().Format(time.RFC3339))
	}
	return n.write(ctx, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		return []*crdt.Session{crdt.Tombstone(id, stamp(), keepUntil)}, nil
	})
}

// Stored returns the session record this node holds for token, whatever
// its state (expired and destroyed ones included), or ErrNotFound when it
// holds none. The record is shared: do not modify it.
func (n *Node) Stored(token string) (*crdt.Session, error) {
	id, ok := SessionID(token)
	if !ok {
		return nil, ErrNotFound
	}
	return n.stored(id)
}

// stored is Stored of the session of id.
func (n *Node) stored(id string) (*crdt.Session, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	s, err := n.storeGet(id)
	if errors.Is(err, persist.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("node: stored: %w", err)
	}
	return s, nil
}

// Len returns the number of keys that hold a value, without building the
// list Keys returns.
func (s Session) Len() int {
	n := 0
	for k, f := range s.state().Fields.All() {
		if !f.Removed && !strings.HasPrefix(k, internalPrefix) {
			n++
		}
	}
	return n
}
