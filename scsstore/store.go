package scsstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// The fields of a node session that holds an scs session.
const (
	// fieldData holds format version, expiry (Unix ms) and scs's blob.
	fieldData = "scs"
	// fieldToken holds the store token, with Options.Iterable only.
	fieldToken = "scs.token"
)

// dataVersion is the first byte of fieldData.
const dataVersion byte = 1

var (
	_ scs.Store         = (*Store)(nil)
	_ scs.CtxStore      = (*Store)(nil)
	_ scs.IterableStore = (*Store)(nil)
)

// Options configures a Store. Start from DefaultOptions.
type Options struct {
	// Lifetime is the least absolute lifetime the node session behind an
	// scs token gets when it is created. Set it to at least scs's
	// SessionManager.Lifetime, and beyond any deadline your code sets with
	// SetDeadline: a node session's deadline is fixed at its creation (that
	// is what makes a logout final), so a commit whose expiry lies beyond
	// it is refused with ErrRefused. Default 24 hours, scs's default
	// Lifetime.
	Lifetime time.Duration
	// Iterable keeps each session's store token in the session, so that
	// All (scs's Iterate) can return it. Off by default: the node stores
	// only hashes of tokens, so that a copy of its data cannot be used to
	// take a session over, and Iterable gives that up for scs's tokens.
	// With scs's HashTokenInStore the store only ever sees hashes of the
	// cookie values, and keeping them gives nothing away: turn both on
	// together (scs's Iterate then hands its callback those hashes as
	// tokens, so use it to read sessions, not to change or destroy them).
	Iterable bool
}

// DefaultOptions returns the options documented on each field.
func DefaultOptions() Options {
	return Options{Lifetime: 24 * time.Hour}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Lifetime <= 0:
		return fmt.Errorf("scsstore: options: Lifetime must be positive")
	}
	return nil
}

// Store is an scs.Store (and scs.CtxStore, scs.IterableStore) on a
// sessionmesh node. It is safe for concurrent use.
type Store struct {
	n    *node.Node
	opts Options
}

// New returns a Store on n with DefaultOptions:
//
//	sessionManager.Store = scsstore.New(n)
func New(n *node.Node) *Store {
	s, err := NewWithOptions(n, DefaultOptions())
	if err != nil {
		panic(err) // unreachable: the defaults validate
	}
	return s
}

// NewWithOptions returns a Store on n with opts.
func NewWithOptions(n *node.Node, opts Options) (*Store, error) {
	if n == nil {
		return nil, errors.New("scsstore: nil node")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Store{n: n, opts: opts}, nil
}

// Find implements scs.Store.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit implements scs.Store.
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete implements scs.Store.
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// All implements scs.IterableStore.
func (s *Store) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// FindCtx returns the data of token. An unknown, malformed, expired or
// destroyed token is not found, without error.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	ctx = versioned(ctx, token)
	sess, err := s.n.Get(ctx, token)
	if errors.Is(err, node.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("scsstore: find: %w", err)
	}
	v, ok := sess.Get(fieldData)
	if !ok {
		return nil, false, nil
	}
	expiry, blob, ok := decodeData(v)
	if !ok || !s.n.Now().Before(expiry) {
		return nil, false, nil
	}
	return blob, true, nil
}

// CommitCtx stores b under token until expiry, creating the session if
// needed. The whole blob is one field: of two concurrent commits to one
// session, the later wins whole. A commit to a destroyed session is
// dropped (logout is final); a commit with an expiry already past deletes.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	ctx = versioned(ctx, token)
	if _, ok := node.SessionID(token); !ok {
		return fmt.Errorf("%w: got %d characters", ErrToken, len(token))
	}
	now := s.n.Now()
	if !expiry.After(now) {
		return s.DeleteCtx(ctx, token)
	}
	set := map[string][]byte{fieldData: encodeData(expiry, b)}
	if s.opts.Iterable {
		set[fieldToken] = []byte(token)
	}
	sess, err := s.n.Get(ctx, token)
	switch {
	case err == nil && sess.Deadline().Before(expiry.Truncate(time.Millisecond)): // the node keeps milliseconds
		// A node session's deadline is fixed at its creation: that is what
		// lets a destroy's tombstone be collected safely. scs's
		// SetDeadline past it is refused; size Options.Lifetime for it.
		return fmt.Errorf("%w: expiry %s is past the session's deadline %s (raise Options.Lifetime)",
			ErrRefused, expiry.UTC().Format(time.RFC3339), sess.Deadline().UTC().Format(time.RFC3339))
	case err == nil:
	case errors.Is(err, node.ErrNotFound):
		// Idle spans the whole life: scs tracks idleness in the expiry
		// stored with the data, so the node's idle timeout must never end
		// the session first.
		life := later(expiry, now.Add(s.opts.Lifetime)).Sub(now)
		idle := s.n.Limits().MaxLifetime
		_, err := s.n.Create(ctx, node.WithToken(token), node.WithLifetime(life), node.WithIdleTimeout(idle), node.WithFields(set))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, node.ErrDestroyed):
			return nil // logout is final: a late commit is dropped
		case errors.Is(err, node.ErrExists):
			// Expired here, or created concurrently: update it below.
		default:
			return s.commitErr(token, len(b), expiry, err)
		}
	default:
		return fmt.Errorf("scsstore: commit: %w", err)
	}
	return s.commitErr(token, len(b), expiry, s.n.Update(ctx, token, set))
}

// commitErr turns a node error from a commit into the store's.
func (s *Store) commitErr(token string, size int, expiry time.Time, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrNotFound):
		if s.destroyed(token) {
			return nil // destroyed since we looked
		}
		return fmt.Errorf("%w: %d bytes expiring %s (check the node's limits and clock)", ErrRefused, size, expiry.UTC().Format(time.RFC3339))
	case errors.Is(err, node.ErrInvalid) || errors.Is(err, node.ErrTooManyFields):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return fmt.Errorf("scsstore: commit: %w", err)
}

// DeleteCtx destroys the session of token on every peer, for good. An
// unknown token is not an error.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	ctx = versioned(ctx, token)
	err := s.n.Destroy(ctx, token)
	if err != nil && !errors.Is(err, node.ErrNotFound) {
		return fmt.Errorf("scsstore: delete: %w", err)
	}
	return nil
}

// AllCtx returns the data of every live session, keyed by token. It reads
// the whole local store, so it is for occasional administrative use; it
// needs Options.Iterable and returns only sessions committed with it.
func (s *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	if !s.opts.Iterable {
		return nil, ErrNotIterable
	}
	now := s.n.Now()
	out := make(map[string][]byte)
	st := s.n.Store()
	all := make([]int, persist.Buckets)
	for b := range all {
		all[b] = b
	}
	err := st.Buckets(ctx, all, func(cs *crdt.Session) error {
		if !cs.Visible(now) {
			return nil
		}
		tok, ok := cs.Get(fieldToken)
		if !ok {
			return nil
		}
		// The token must be the one the session is stored under:
		// never trust a field to name another session.
		if id, ok := node.SessionID(string(tok)); !ok || id != cs.ID {
			return nil
		}
		v, ok := cs.Get(fieldData)
		if !ok {
			return nil
		}
		expiry, blob, ok := decodeData([]byte(v))
		if ok && now.Before(expiry) {
			out[string(tok)] = bytes.Clone(blob)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scsstore: all: %w", err)
	}
	return out, nil
}

// destroyed reports whether this node holds a tombstone for token.
func (s *Store) destroyed(token string) bool {
	id, ok := node.SessionID(token)
	if !ok {
		return false
	}
	cs, err := s.n.Store().Get(id)
	return err == nil && cs.IsDestroyed()
}

func encodeData(expiry time.Time, blob []byte) []byte {
	out := make([]byte, 0, 9+len(blob))
	out = append(out, dataVersion)
	out = binary.BigEndian.AppendUint64(out, uint64(expiry.UnixMilli()))
	return append(out, blob...)
}

func decodeData(v []byte) (expiry time.Time, blob []byte, ok bool) {
	if len(v) < 9 || v[0] != dataVersion {
		return time.Time{}, nil, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v[1:9]))), v[9:], true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
