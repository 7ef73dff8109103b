package node

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

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

// Values yields the keys that hold a value and their values, in ascending
// key order, without copying: the strings share the snapshot's memory,
// which never changes. It is Keys and GetString without the slice and the
// lookups, for a reader that answers every field.
func (s Session) Values() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range s.state().Fields.Values() {
			if !strings.HasPrefix(k, internalPrefix) && !yield(k, v) {
				return
			}
		}
	}
}

// Fields returns a copy of every field. The values share one buffer (an
// append to one copies it); the keys share the snapshot's memory.
func (s Session) Fields() map[string][]byte {
	return s.state().Fields.CopyValues(internalPrefix)
}

// FieldsInto makes m a copy of every field: Fields for a caller that
// reads one session after another into the same map (a worker's scratch
// map, a pooled request state), which allocates nothing once m holds
// slices big enough for the values. It deletes m's other keys and copies
// each value into the slice m holds for its key, overwriting it: keep
// no value of m across calls, and give each key memory of its own (as
// Fields and FieldsInto do). m must not be nil.
func (s Session) FieldsInto(m map[string][]byte) {
	n := 0
	for k, v := range s.Values() {
		m[k] = append(m[k][:0], v...)
		n++
	}
	if len(m) > n {
		for k := range m {
			if _, ok := s.GetString(k); !ok {
				delete(m, k)
			}
		}
	}
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
	op := LocalOp{Kind: OpCreate, ID: id, Set: o.fields, Idle: o.idle, Lifetime: o.lifetime, Chosen: o.token != ""}
	if ownerHash != "" {
		op.Extra = func(ds []*crdt.Session, ts crdt.Timestamp) []*crdt.Session {
			d := ds[0]
			WithOwnerField(d, ownerHash, ts)
			return n.withIndex(ds, ownerHash, d, ts)
		}
	}
	ds, err := n.local(ctx, op, o.token != "")
	if err != nil {
		return "", err
	}
	setVersion(ctx, ds[0].Version())
	return token, nil
}

// Get returns a snapshot of the session of token, or ErrNotFound if it does
// not exist, has expired or was destroyed.
func (n *Node) Get(ctx context.Context, token string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	// The edge read: the id stays on the stack and the session comes from
	// the store's cache without a lock or an allocation.
	var idb [idLen]byte
	if !sessionIDTo(token, &idb) {
		return Session{}, ErrNotFound
	}
	return n.get(ctx, unsafe.String(&idb[0], idLen))
}

// get is Get of the session of id, which the caller may reuse once it
// returns (a stack array).
func (n *Node) get(ctx context.Context, id string) (Session, error) {
	v := versionOf(ctx)
	if v != nil && len(*v) > 0 {
		if err := n.await(ctx, strings.Clone(id)); err != nil {
			return Session{}, err
		}
	}
	s, err := n.readScratch(id)
	if err != nil {
		return Session{}, err
	}
	la, err := n.check(s, n.cfg.Clock.Now())
	if err != nil {
		return Session{}, err
	}
	if v != nil {
		*v = s.Version()
	}
	return Session{s: s, lastAccess: la}, nil
}

// visible returns the stored session if a reader may see it at now, with
// its last access including local-only touches.
func (n *Node) visible(id string, now time.Time) (*crdt.Session, int64, error) {
	s, err := n.read(id)
	if err != nil {
		return nil, 0, err
	}
	la, err := n.check(s, now)
	return s, la, err
}

// check reports whether a reader may see the stored session s (nil: none)
// at now, and its last access including local-only touches.
func (n *Node) check(s *crdt.Session, now time.Time) (int64, error) {
	// Core.Visible is safe beside the core's other work: reads take no
	// lock of the node's.
	la, ok := n.core.Visible(s, now)
	if !ok {
		return 0, ErrNotFound
	}
	if revoked, err := n.revoked(s); err != nil || revoked {
		if err == nil {
			err = ErrNotFound
		}
		return 0, err
	}
	return la, nil
}

// readScratch is read for an id the caller may reuse once it returns (a
// stack array): a persist store keeps no reference to it; any other store,
// and a read from other peers (partial replication), gets a copy.
func (n *Node) readScratch(id string) (*crdt.Session, error) {
	if n.ps == nil || !n.core.ServesID(id) {
		return n.read(strings.Clone(id))
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	s, err := n.ps.Get(id)
	return readResult(s, err)
}

// read returns the stored session of id, nil when there is none.
func (n *Node) read(id string) (*crdt.Session, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	return readResult(n.storeGet(id))
}

func readResult(s *crdt.Session, err error) (*crdt.Session, error) {
	if errors.Is(err, persist.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: get: %w", err)
	}
	return s, nil
}

// Set writes one field.
func (n *Node) Set(ctx context.Context, token, key string, value []byte) error {
	m := setMaps.Get().(map[string][]byte)
	m[key] = value
	err := n.Update(ctx, token, m)
	clear(m)
	setMaps.Put(m)
	return err
}

// setMaps keeps the one-field maps Set hands to Update, two allocations
// a write otherwise: Update keeps nothing of the map once it returns (the
// Core copies the values it stamps into the delta).
var setMaps = sync.Pool{New: func() any { return make(map[string][]byte, 1) }}

// Remove removes fields.
func (n *Node) Remove(ctx context.Context, token string, keys ...string) error {
	return n.Update(ctx, token, nil, keys...)
}

// Update writes and removes fields in one delta: concurrent updates of
// other fields of the same session, here or on other peers, merge with it.
func (n *Node) Update(ctx context.Context, token string, set map[string][]byte, remove ...string) error {
	return n.mutate(ctx, token, LocalOp{Kind: OpUpdate, Set: set, Remove: remove})
}

// Touch records an access. A touch that moves last access by less than
// TouchFraction of the idle timeout stays on this peer.
func (n *Node) Touch(ctx context.Context, token string) error {
	return n.mutate(ctx, token, LocalOp{Kind: OpTouch})
}

// Now returns the node's current time, from Config.Clock.
func (n *Node) Now() time.Time { return n.cfg.Clock.Now() }

// Limits returns the bounds the node enforces on sessions and messages.
func (n *Node) Limits() crdt.Limits { return n.cfg.Limits }

// MaxFields returns the most fields a local write may give a session
// (Config.MaxFields).
func (n *Node) MaxFields() int { return n.cfg.MaxFields }

// Destroy ends the session of token on every peer, for good: no write from
// any peer, however late, brings it back.
func (n *Node) Destroy(ctx context.Context, token string) error {
	return n.mutate(ctx, token, LocalOp{Kind: OpDestroy})
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
	defer n.writeLocks.lock(id).Unlock()
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
	ds, err := n.local(ctx, LocalOp{Kind: OpRenew, ID: id, Stored: old, NewID: newID,
		Extra: func(ds []*crdt.Session, ts crdt.Timestamp) []*crdt.Session { return n.withOwnerIndex(old, ds, ts) }}, false)
	if err != nil {
		return "", err
	}
	setVersion(ctx, ds[0].Version())
	return fresh, nil
}

// mutate runs op on the visible session of token, under the session's
// write lock, once this peer holds the version the caller saw.
func (n *Node) mutate(ctx context.Context, token string, op LocalOp) error {
	id, ok := SessionID(token)
	if !ok {
		return ErrNotFound
	}
	return n.mutateID(ctx, id, op)
}

// mutateID is mutate of the session of id.
func (n *Node) mutateID(ctx context.Context, id string, op LocalOp) error {
	if err := n.await(ctx, id); err != nil {
		return err
	}
	defer n.writeLocks.lock(id).Unlock()
	s, _, err := n.visible(id, n.cfg.Clock.Now())
	if err != nil {
		return err
	}
	op.ID, op.Stored = id, s
	ds, err := n.local(ctx, op, false)
	switch {
	case err != nil:
		return err
	case versionOf(ctx) == nil: // nobody to tell
	case len(ds) == 0: // a lazy touch
		setVersion(ctx, s.Version())
	case !ds[0].IsDestroyed():
		setVersion(ctx, s.Version().Join(ds[0].Version()))
	}
	return nil
}

// write stores the deltas build makes, with timestamps the core issues,
// as one change (OpBuild).
func (n *Node) write(ctx context.Context, build func(stamp func() crdt.Timestamp) ([]*crdt.Session, error)) error {
	_, err := n.local(ctx, LocalOp{Kind: OpBuild, Build: build}, false)
	return err
}

// local runs a local operation through the core: read the stored state
// when asked (outside the core's lock), let the core decide and stamp,
// carry out the write it hands back on this goroutine, and return once the
// core acknowledged it durable, with the deltas written (none for a lazy
// touch). The deltas of one change (Renew's two sessions) are one Apply,
// so one transaction, and one broadcast batch: every peer takes all of
// them or none. ctx is checked before the write only: a write made is
// reported as made.
func (n *Node) local(ctx context.Context, op LocalOp, read bool) ([]*crdt.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	if read {
		s, err := n.read(op.ID)
		if err != nil {
			return nil, err
		}
		op.Stored = s
	}
	var err error
	a, ok := n.stepLocal(func(c *Core, now time.Time) uint64 {
		var ticket uint64
		ticket, err = c.Local(now, op)
		return ticket
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil // a lazy touch: nothing written
	}
	// Also on a failed write: it may have landed.
	n.remoteCache.forget(a.Deltas)
	if a.Err != nil {
		return nil, a.Err
	}
	return a.Deltas, nil
}

// Watch returns a feed of changes, local and remote, until ctx ends or the
// node closes. A subscriber that falls behind by more than its buffer loses
// changes (counted as changes_dropped): the feed never slows the node down.
// A change's Fields are the keys a caller can read (Session.Keys): the
// node's own fields (version entries) are left out, and a change of those
// alone is not sent.
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

// callerChange is c as a Watch subscriber sees it: without the node's own
// fields; false when nothing else changed.
func callerChange(c Change) (Change, bool) {
	internal := 0
	for _, k := range c.Fields {
		if strings.HasPrefix(k, internalPrefix) {
			internal++
		}
	}
	if internal == 0 {
		return c, true
	}
	c.Fields = slices.DeleteFunc(slices.Clone(c.Fields), func(k string) bool { return strings.HasPrefix(k, internalPrefix) })
	return c, !c.Empty()
}

func (n *Node) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	n.wakeWaiters(changes)
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	if len(n.watchers) == 0 {
		return
	}
	shown := changes[:0:0]
	for _, c := range changes {
		if c, ok := callerChange(c); ok {
			shown = append(shown, c)
		}
	}
	for ch := range n.watchers {
		for _, c := range shown {
			select {
			case ch <- c:
			default:
				n.m.Add("changes_dropped", 1)
			}
		}
	}
}
