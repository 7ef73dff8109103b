package sessionhttp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// state returns the request state of ctx, or nil (logged) when ctx did not
// come through LoadAndSave.
func (m *Manager) state(ctx context.Context) *state {
	st, _ := ctx.Value(ctxKey{m}).(*state)
	if st == nil {
		m.log.Error(ErrNoSession.Error())
	}
	return st
}

// Get returns the value of key, or nil if the session has none (or its
// bytes cannot be decoded, which is logged). Use the typed getters
// (GetString, GetInt, ...) to skip the type assertion.
func (m *Manager) Get(ctx context.Context, key string) any {
	st := m.state(ctx)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return m.get(st, key)
}

// get decodes the value of key once; the caller holds st.mu.
func (m *Manager) get(st *state, key string) any {
	v, ok := st.vals[key]
	if !ok {
		return nil
	}
	if !v.decoded {
		x, err := m.cfg.Codec.Decode(v.raw)
		if err != nil {
			m.log.Warn("session value cannot be decoded", "key", key, "err", err)
		}
		v.v, v.decoded = x, true
	}
	return v.v
}

// Put sets key to val. The value is encoded now (later changes to val are
// not seen) and committed with the request; a request without a session
// gets one. It returns an error wrapping ErrEncode, and changes nothing,
// when the codec cannot encode val, ErrTooLarge when its encoding is over
// the mesh's bound on one value, ErrInvalidKey for an empty, reserved or
// too long key, and ErrTooLate when the request has no session and the
// response header is already written.
func (m *Manager) Put(ctx context.Context, key string, val any) error {
	l := m.n.Limits()
	if key == "" || strings.HasPrefix(key, reservedPrefix) || len(key) > l.MaxKeyBytes {
		return fmt.Errorf("%w: %q", ErrInvalidKey, trimKey(key))
	}
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	raw, err := m.cfg.Codec.Encode(val)
	if err != nil {
		if errors.Is(err, ErrEncode) {
			return fmt.Errorf("sessionhttp: put %q: %w", key, err)
		}
		return fmt.Errorf("%w: put %q: %w", ErrEncode, key, err)
	}
	if len(raw) > l.MaxValueBytes {
		return fmt.Errorf("%w: put %q: %d bytes encoded (max %d)", ErrTooLarge, key, len(raw), l.MaxValueBytes)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.headerDone && st.token == "" {
		return fmt.Errorf("put %q: %w", key, ErrTooLate)
	}
	st.put(key, raw, val)
	return nil
}

// Pop returns the value of key and removes it: a one-time Get, for flash
// messages.
func (m *Manager) Pop(ctx context.Context, key string) any {
	st := m.state(ctx)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	v := m.get(st, key)
	st.remove(key)
	return v
}

// Remove removes key. Removing a key that is not there does nothing.
func (m *Manager) Remove(ctx context.Context, key string) {
	if st := m.state(ctx); st != nil {
		st.mu.Lock()
		st.remove(key)
		st.mu.Unlock()
	}
}

// Exists reports whether the session holds key.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	st := m.state(ctx)
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.vals[key]
	return ok && !strings.HasPrefix(key, reservedPrefix)
}

// Keys returns the session's keys, sorted; empty, not nil, when there are
// none.
func (m *Manager) Keys(ctx context.Context) []string {
	st := m.state(ctx)
	if st == nil {
		return []string{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.keys()
}

// Clear removes every key this request sees; the token and deadlines stay.
// Keys written concurrently by another request are not removed: the
// removals merge per field like any other write.
func (m *Manager) Clear(ctx context.Context) error {
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, k := range st.keys() {
		st.remove(k)
	}
	return nil
}

// RenewToken moves the session to a new token and destroys the old one on
// every peer, keeping its values and its absolute deadline. Call it when
// privileges change (login, logout into a fresh anonymous session), before
// writing the new privileges, against session fixation. A request without a
// session gets a new one, even if it writes nothing else. Call it before the
// response header is written (ErrTooLate otherwise).
func (m *Manager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.headerDone {
		return fmt.Errorf("renew: %w", ErrTooLate)
	}
	if st.token == "" {
		st.renew = true
		return nil
	}
	token, err := m.n.Renew(node.WithVersion(ctx, &st.version), st.token)
	if errors.Is(err, node.ErrNotFound) {
		// The session ended since the request started: what this request
		// wrote goes to a new one, the rest is gone with it.
		for k := range st.vals {
			if !st.dirty[k] {
				delete(st.vals, k)
			}
		}
		st.token, st.issued, st.renew = "", false, true
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessionhttp: renew: %w", err)
	}
	st.token, st.issued, st.wrote = token, true, true
	return nil
}

// Destroy ends the session on every peer, for good (logout). The response
// expires the cookie and carries Cache-Control: no-store and
// Clear-Site-Data (Config.ClearSiteData). Values written after Destroy in
// the same request go to a new session under a new token: the response
// then sets that session's cookie instead, without Clear-Site-Data (which
// would clear it).
//
// Destroy completes even if the request's context is cancelled (the client
// went away): a logout must not depend on the client waiting for it. Called
// after the response header was written, it still ends the session, but
// the response can no longer clear the cookie.
func (m *Manager) Destroy(ctx context.Context) error {
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.token != "" {
		err := m.n.Destroy(context.WithoutCancel(ctx), st.token)
		if err != nil && !errors.Is(err, node.ErrNotFound) {
			return fmt.Errorf("sessionhttp: destroy: %w", err)
		}
	}
	st.reset()
	st.destroyed = true
	return nil
}

// RememberMe makes this session's cookie persistent (or not) when
// CookieConfig.Persist is off. The choice is stored in the session.
func (m *Manager) RememberMe(ctx context.Context, remember bool) {
	st := m.state(ctx)
	if st == nil {
		return
	}
	raw, _ := m.cfg.Codec.Encode(remember)
	st.mu.Lock()
	st.put(persistKey, raw, remember)
	st.resend = true
	st.mu.Unlock()
}

// Token returns the session's token, or "" when the request has no session
// yet (a new session gets its token when the response header is written).
// Handle it as a credential: never log it or put it in a URL.
func (m *Manager) Token(ctx context.Context) string {
	st := m.state(ctx)
	if st == nil {
		return ""
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.token
}

// Deadline returns the session's absolute deadline, or the zero time when
// the request has no session yet.
func (m *Manager) Deadline(ctx context.Context) time.Time {
	st := m.state(ctx)
	if st == nil {
		return time.Time{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.token == "" {
		return time.Time{}
	}
	if st.deadline.IsZero() {
		if s, err := m.n.Get(ctx, st.token); err == nil {
			st.deadline = s.Deadline()
		}
	}
	return st.deadline
}

// SetOwner makes the application user owner the session's owner, so that
// the user's sessions can be listed and revoked on every peer
// (node.OwnerSessions, node.RevokeOwner, Manager.RevokeOwner). Call it at
// login, next to RenewToken. A request without a session gets one, owned
// from its creation. The node keeps owner ids hashed.
func (m *Manager) SetOwner(ctx context.Context, owner string) error {
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	if owner == "" {
		return fmt.Errorf("%w: empty owner", ErrInvalidKey)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.token == "" {
		if st.headerDone {
			return fmt.Errorf("set owner: %w", ErrTooLate)
		}
		st.owner, st.renew = owner, true
		return nil
	}
	if err := m.n.SetOwner(node.WithVersion(ctx, &st.version), st.token, owner); err != nil {
		return fmt.Errorf("sessionhttp: set owner: %w", err)
	}
	st.wrote = true
	return nil
}

// RevokeOwner ends every session of owner on every peer, for good ("log
// out everywhere", after a password change or a stolen device): no peer
// that has seen the revocation serves any of them again, whatever a peer
// cut off from this one writes meanwhile. With keepCurrent, the request's
// own session (which must be owner's) stays, moved to a new token created
// after the revocation, sent like RenewToken's; call it then before the
// response header is written.
func (m *Manager) RevokeOwner(ctx context.Context, owner string, keepCurrent bool) error {
	st := m.state(ctx)
	if st == nil {
		return ErrNoSession
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	keep := ""
	if keepCurrent && st.token != "" {
		if st.headerDone {
			return fmt.Errorf("revoke: %w", ErrTooLate)
		}
		keep = st.token
	}
	fresh, err := m.n.RevokeOwner(node.WithVersion(ctx, &st.version), owner, keep)
	if err != nil {
		return fmt.Errorf("sessionhttp: revoke: %w", err)
	}
	if fresh != "" {
		st.token, st.issued, st.wrote = fresh, true, true
	} else if st.token != "" {
		// The request's own session, if owner's, is revoked with the
		// rest: whether it was is for the next request to find out.
		st.version = nil
	}
	return nil
}

// trimKey is key as an error message shows it: a key over the bound may be
// of any length.
func trimKey(key string) string {
	if len(key) > 64 {
		return key[:64] + "..."
	}
	return key
}
