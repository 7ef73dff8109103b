package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Session is an immutable snapshot of a visible session. The zero Session
// (returned with an error) is empty.
type Session struct {
	s          *crdt.Session
	lastAccess int64
}

var emptySession = &crdt.Session{}

func (s Session) state() *crdt.Session {
	if s.s == nil {
		return emptySession
	}
	return s.s
}

// ID returns the session id: the hash of its token (SessionID).
func (s Session) ID() string { return s.state().ID }

// Get returns a copy of the value of key.
func (s Session) Get(key string) ([]byte, bool) {
	v, ok := s.GetString(key)
	if !ok {
		return nil, false
	}
	return []byte(v), true
}

// GetString returns the value of key without copying it: the string
// shares the snapshot's memory, which never changes.
func (s Session) GetString(key string) (string, bool) {
	if strings.HasPrefix(key, internalPrefix) {
		return "", false
	}
	return s.state().Get(key)
}

// Keys returns the keys that hold a value, sorted.
func (s Session) Keys() []string {
	return slices.DeleteFunc(s.state().Keys(), func(k string) bool { return strings.HasPrefix(k, internalPrefix) })
}

// Fields returns a copy of every field.
func (s Session) Fields() map[string][]byte {
	out := make(map[string][]byte, s.state().Fields.Len())
	for k, f := range s.state().Fields.All() {
		if !f.Removed && !strings.HasPrefix(k, internalPrefix) {
			out[k] = []byte(f.Value)
		}
	}
	return out
}

// Version returns the session's version: what a client that saw this
// snapshot has seen (WithVersion).
func (s Session) Version() Version { return s.state().Version() }

// Created returns the creation time.
func (s Session) Created() time.Time { return time.UnixMilli(s.state().Created.Millis()) }

// LastAccess returns the last access this peer knows of.
func (s Session) LastAccess() time.Time { return time.UnixMilli(s.lastAccess) }

// IdleTimeout returns the session's idle timeout.
func (s Session) IdleTimeout() time.Duration { return time.Duration(s.state().Idle) * time.Millisecond }

// Deadline returns the absolute deadline, fixed at creation.
func (s Session) Deadline() time.Time { return time.UnixMilli(s.state().Absolute) }

// ExpiresAt returns when the session expires unless touched.
func (s Session) ExpiresAt() time.Time {
	st := s.state()
	return time.UnixMilli(min(st.Absolute, s.lastAccess+st.Idle))
}

// CreateOption adjusts a new session.
type CreateOption func(*createOptions)

type createOptions struct {
	idle, lifetime time.Duration
	fields         map[string][]byte
	token          string
	owner          string
}

// WithIdleTimeout sets the session's idle timeout.
func WithIdleTimeout(d time.Duration) CreateOption { return func(o *createOptions) { o.idle = d } }

// WithLifetime sets the session's absolute lifetime.
func WithLifetime(d time.Duration) CreateOption { return func(o *createOptions) { o.lifetime = d } }

// WithToken creates the session under a token the caller chose instead of
// one drawn by the node: for adapters whose framework issues its own tokens
// (scsstore). The token must be 256 bits in unpadded base64url, drawn from a
// cryptographic source. Create fails with ErrExists if this node holds any
// state for it, and ErrDestroyed if it was destroyed.
func WithToken(token string) CreateOption { return func(o *createOptions) { o.token = token } }

// WithFields sets initial fields.
func WithFields(f map[string][]byte) CreateOption {
	return func(o *createOptions) { o.fields = f }
}

// Create starts a session and returns its token, 256 bits from the node's
// random source. Only the token's hash is stored and replicated.
func (n *Node) Create(ctx context.Context, opts ...CreateOption) (string, error) {
	o := createOptions{idle: n.cfg.IdleTimeout, lifetime: n.cfg.AbsoluteLifetime}
	for _, f := range opts {
		f(&o)
	}
	if o.idle <= 0 || o.lifetime <= 0 {
		return "", fmt.Errorf("%w: idle timeout and lifetime must be positive", ErrInvalid)
	}
	var ownerHash string
	if o.owner != "" {
		var err error
		if ownerHash, err = n.ownerHash(o.owner); err != nil {
			return "", err
		}
	}
	token := o.token
	if token == "" {
		var err error
		if token, err = newToken(n.cfg.Rand); err != nil {
			return "", err
		}
	}
	id, ok := SessionID(token)
	if !ok {
		return "", fmt.Errorf("%w: token is not 256 bits of base64url", ErrInvalid)
	}
	if o.token != "" {
		switch s, err := n.store.Get(id); {
		case err == nil && s.IsDestroyed():
			return "", ErrDestroyed
		case err == nil:
			return "", ErrExists
		case !errors.Is(err, persist.ErrNotFound):
			return "", fmt.Errorf("node: create: %w", err)
		}
	}
	now := n.cfg.Clock.Now()
	var created *crdt.Session
	err := n.write(ctx, now, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		ts := stamp()
		d := crdt.Create(id, ts, now.Add(o.lifetime), o.idle)
		created = d
		if err := n.addFields(d, d, o.fields, nil, ts); err != nil {
			return nil, err
		}
		if ownerHash == "" {
			return []*crdt.Session{d}, nil
		}
		d.Fields = d.Fields.With(ownerKey, crdt.Field{Value: ownerHash, TS: ts})
		return n.withIndex([]*crdt.Session{d}, ownerHash, d, ts), nil
	})
	if err != nil {
		return "", err
	}
	setVersion(ctx, created.Version())
	return token, nil
}

// Get returns a snapshot of the session of token, or ErrNotFound if it does
// not exist, has expired or was destroyed.
func (n *Node) Get(ctx context.Context, token string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	id, ok := SessionID(token)
	if !ok {
		return Session{}, ErrNotFound
	}
	if err := n.await(ctx, id); err != nil {
		return Session{}, err
	}
	s, la, err := n.visible(id, n.cfg.Clock.Now())
	if err != nil {
		return Session{}, err
	}
	setVersion(ctx, s.Version())
	return Session{s: s, lastAccess: la}, nil
}

// visible returns the stored session if a reader may see it at now, with
// its last access including local-only touches.
func (n *Node) visible(id string, now time.Time) (*crdt.Session, int64, error) {
	if n.isClosed() {
		return nil, 0, ErrClosed
	}
	s, err := n.store.Get(id)
	if errors.Is(err, persist.ErrNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("node: get: %w", err)
	}
	la := s.LastAccess
	// Most peers hold few local touches: skip the lock when there are
	// none, so that reads on many goroutines do not meet on it.
	if n.touchCount.Load() > 0 {
		n.touchMu.Lock()
		if t, ok := n.touches[id]; ok {
			if t > la {
				la = t
			} else {
				delete(n.touches, id)
				n.touchCount.Store(int64(len(n.touches)))
			}
		}
		n.touchMu.Unlock()
	}
	ms := now.UnixMilli()
	if s.Created.IsZero() || s.IsDestroyed() || ms >= min(s.Absolute, la+s.Idle) {
		return nil, 0, ErrNotFound
	}
	if revoked, err := n.revoked(s); err != nil || revoked {
		if err == nil {
			err = ErrNotFound
		}
		return nil, 0, err
	}
	return s, la, nil
}

// Set writes one field.
func (n *Node) Set(ctx context.Context, token, key string, value []byte) error {
	return n.Update(ctx, token, map[string][]byte{key: value})
}

// Remove removes fields.
func (n *Node) Remove(ctx context.Context, token string, keys ...string) error {
	return n.Update(ctx, token, nil, keys...)
}

// Update writes and removes fields in one delta: concurrent updates of
// other fields of the same session, here or on other peers, merge with it.
func (n *Node) Update(ctx context.Context, token string, set map[string][]byte, remove ...string) error {
	return n.mutate(ctx, token, func(s *crdt.Session, stamp func() crdt.Timestamp, _ time.Time) (*crdt.Session, error) {
		ts := stamp()
		d := s.Clone()
		return d, n.addFields(s, d, set, remove, ts)
	})
}

// addFields adds writes to delta d of session s, within the field bound,
// and stamps d's version with ts. A delta that writes fields is the whole
// state s plus the writes (d starts as a clone of s, or is s on a create):
// a version entry stands for everything its writer held (crdt.Version), so
// a peer that merged the delta holds all of it, even if it missed an
// earlier delta.
func (n *Node) addFields(s, d *crdt.Session, set map[string][]byte, remove []string, ts crdt.Timestamp) error {
	// Counted before merging: on a create s and d are the same session, so
	// the merges below grow s.Fields too. The node's own keys (version
	// entries, owner) do not count.
	had, fresh := 0, 0
	for k := range s.Fields.All() {
		if !strings.HasPrefix(k, internalPrefix) {
			had++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if k == "" {
			return fmt.Errorf("%w: empty field key", ErrInvalid)
		}
		if strings.HasPrefix(k, internalPrefix) {
			return fmt.Errorf("%w: field key %q: keys starting with %q are the node's", ErrInvalid, k, internalPrefix)
		}
		if !s.Fields.Has(k) {
			fresh++
		}
		d.Fields = d.Fields.With(k, crdt.Field{Value: string(set[k]), TS: ts})
	}
	for _, k := range remove {
		if strings.HasPrefix(k, internalPrefix) {
			return fmt.Errorf("%w: field key %q: keys starting with %q are the node's", ErrInvalid, k, internalPrefix)
		}
		if s.Fields.Has(k) {
			d.Fields = d.Fields.With(k, crdt.Field{Removed: true, TS: ts})
		}
	}
	if had+fresh > n.cfg.MaxFields {
		return fmt.Errorf("%w: %d fields, limit %d", ErrTooManyFields, had+fresh, n.cfg.MaxFields)
	}
	k, f := crdt.VersionField(ts)
	d.Fields = d.Fields.With(k, f)
	return nil
}

// Touch records an access. A touch that moves last access by less than
// TouchFraction of the idle timeout stays on this peer.
func (n *Node) Touch(ctx context.Context, token string) error {
	id, ok := SessionID(token)
	if !ok {
		return ErrNotFound
	}
	if err := n.await(ctx, id); err != nil {
		return err
	}
	now := n.cfg.Clock.Now()
	s, _, err := n.visible(id, now)
	if err != nil {
		return err
	}
	if float64(now.UnixMilli()-s.LastAccess) < n.cfg.TouchFraction*float64(s.Idle) {
		n.touchMu.Lock()
		n.touches[id] = max(n.touches[id], now.UnixMilli())
		n.touchCount.Store(int64(len(n.touches)))
		n.touchMu.Unlock()
		setVersion(ctx, s.Version())
		return nil
	}
	return n.mutate(ctx, token, func(s *crdt.Session, _ func() crdt.Timestamp, now time.Time) (*crdt.Session, error) {
		return s.Touch(now), nil
	})
}

// Now returns the node's current time, from Config.Clock.
func (n *Node) Now() time.Time { return n.cfg.Clock.Now() }

// Limits returns the bounds the node enforces on sessions and messages.
func (n *Node) Limits() crdt.Limits { return n.cfg.Limits }

// Destroy ends the session of token on every peer, for good: no write from
// any peer, however late, brings it back.
func (n *Node) Destroy(ctx context.Context, token string) error {
	return n.mutate(ctx, token, func(s *crdt.Session, stamp func() crdt.Timestamp, _ time.Time) (*crdt.Session, error) {
		return s.Destroy(stamp()), nil
	})
}

// Renew moves the session to a new token and destroys the old one: call it
// when privileges change (login) against session fixation. The new session
// keeps the fields, the idle timeout and the absolute deadline.
//
// It is all or nothing: the new session and the old one's destruction are
// one durable write and travel to other peers in one batch, so no peer
// keeps both alive, and an error (a failed write, a context ended before
// it) leaves the old token valid and no new session. Once the write is
// made, Renew returns the new token even if ctx ends meanwhile: the old
// one no longer works.
func (n *Node) Renew(ctx context.Context, token string) (string, error) {
	id, ok := SessionID(token)
	if !ok {
		return "", ErrNotFound
	}
	if err := n.await(ctx, id); err != nil {
		return "", err
	}
	defer n.writeLocks.lock(id)()
	now := n.cfg.Clock.Now()
	old, _, err := n.visible(id, now)
	if err != nil {
		return "", err
	}
	fresh, err := newToken(n.cfg.Rand)
	if err != nil {
		return "", err
	}
	newID, _ := SessionID(fresh)
	var renewed *crdt.Session
	err = n.write(ctx, now, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		ts := stamp()
		d := crdt.Create(newID, ts, time.UnixMilli(old.Absolute), time.Duration(old.Idle)*time.Millisecond)
		for k, f := range old.Fields.All() {
			// The old session's version entries describe the old
			// session: the new one starts its own.
			if !f.Removed && !strings.HasPrefix(k, crdt.VersionKeyPrefix) {
				d.Fields = d.Fields.With(k, crdt.Field{Value: f.Value, TS: ts})
			}
		}
		vk, vf := crdt.VersionField(ts)
		d.Fields = d.Fields.With(vk, vf)
		renewed = d
		return n.withOwnerIndex(old, []*crdt.Session{d, old.Destroy(ts)}, ts), nil
	})
	if err != nil {
		return "", err
	}
	setVersion(ctx, renewed.Version())
	return fresh, nil
}

// mutate applies a delta built from the visible session of token.
func (n *Node) mutate(ctx context.Context, token string, build func(s *crdt.Session, stamp func() crdt.Timestamp, now time.Time) (*crdt.Session, error)) error {
	id, ok := SessionID(token)
	if !ok {
		return ErrNotFound
	}
	if err := n.await(ctx, id); err != nil {
		return err
	}
	defer n.writeLocks.lock(id)()
	now := n.cfg.Clock.Now()
	s, _, err := n.visible(id, now)
	if err != nil {
		return err
	}
	var d *crdt.Session
	err = n.write(ctx, now, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		var err error
		d, err = build(s, stamp, now)
		return []*crdt.Session{d}, err
	})
	if err != nil {
		return err
	}
	if !d.IsDestroyed() {
		setVersion(ctx, s.Version().Join(d.Version()))
	}
	return nil
}

// write stores the local deltas of one change, queues them for broadcast
// and reports them. The deltas of one change (Renew's two sessions) are
// one Apply, so one transaction, and one broadcast batch: every peer takes
// all of them or none. ctx is checked before the write only: a write made
// is reported as made.
func (n *Node) write(ctx context.Context, now time.Time, build func(stamp func() crdt.Timestamp) ([]*crdt.Session, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.isClosed() {
		return ErrClosed
	}
	stamp := func() crdt.Timestamp {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.core.Stamp(now)
	}
	ds, err := build(stamp)
	if err != nil {
		return err
	}
	res, err := n.store.Apply(crdt.NewBatch(ds...), now)
	if err != nil {
		return fmt.Errorf("node: write: %w", err)
	}
	if len(res.Refused) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, res.Refused[0].Err)
	}
	if len(res.Deferred) > 0 {
		// Our own stamps are never beyond the drift bound of our own clock
		// unless the clock stepped back by more than MaxDrift.
		return fmt.Errorf("node: write: local clock behind its own timestamps: %w", crdt.ErrClockDrift)
	}
	n.step(func(c *Core, now time.Time) { c.LocalDelta(now, ds...) })
	n.kick()
	changes := make([]Change, len(res.Changes))
	for i, ch := range res.Changes {
		changes[i] = Change{Change: ch}
	}
	n.notify(changes)
	return nil
}

// Watch returns a feed of changes, local and remote, until ctx ends or the
// node closes. A subscriber that falls behind by more than its buffer loses
// changes (counted as changes_dropped): the feed never slows the node down.
func (n *Node) Watch(ctx context.Context) <-chan Change {
	ch := make(chan Change, 1024)
	n.watchMu.Lock()
	if n.isClosed() {
		close(ch)
	} else {
		n.watchers[ch] = struct{}{}
	}
	n.watchMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-n.done:
		}
		n.watchMu.Lock()
		if _, ok := n.watchers[ch]; ok {
			delete(n.watchers, ch)
			close(ch)
		}
		n.watchMu.Unlock()
	}()
	return ch
}

func (n *Node) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	n.wakeWaiters(changes)
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	for ch := range n.watchers {
		for _, c := range changes {
			select {
			case ch <- c:
			default:
				n.m.Add("changes_dropped", 1)
			}
		}
	}
}
