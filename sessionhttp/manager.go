package sessionhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// Manager serves sessions kept by a node to net/http handlers. It is safe
// for concurrent use; one Manager usually serves a whole application.
type Manager struct {
	n          *node.Node
	cfg        Config
	log        *slog.Logger
	errorFunc  func(http.ResponseWriter, *http.Request, error)
	cookieName string
	// versionCookie carries the session's version to the browser and
	// back, beside the token cookie, with the same attributes.
	versionCookie string
	vary          []string
}

// ctxKey finds a Manager's request state in a context; several Managers
// can wrap the same request.
type ctxKey struct{ m *Manager }

// New returns a Manager over n with cfg (start from DefaultConfig).
func New(n *node.Node, cfg Config) (*Manager, error) {
	if n == nil {
		return nil, errors.New("sessionhttp: nil node")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Cookie.SameSite == 0 {
		cfg.Cookie.SameSite = http.SameSiteLaxMode
	}
	m := &Manager{n: n, cfg: cfg, log: cfg.Logger.With("component", "sessionhttp")}
	m.errorFunc = cfg.ErrorFunc
	if m.errorFunc == nil {
		m.errorFunc = m.defaultErrorFunc
	}
	m.cookieName = cfg.Cookie.Name
	if !cfg.Cookie.Insecure {
		m.cookieName = "__Host-" + cfg.Cookie.Name
	}
	m.versionCookie = m.cookieName + "-version"
	if !cfg.Header.Only {
		m.vary = append(m.vary, "Cookie")
	}
	if cfg.Header.Name != "" {
		m.vary = append(m.vary, cfg.Header.Name)
	}
	return m, nil
}

// CookieName returns the name the session cookie is sent under, with its
// prefix.
func (m *Manager) CookieName() string { return m.cookieName }

func (m *Manager) defaultErrorFunc(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, node.ErrStale):
		m.log.Warn("session not at the client's version on this peer in time", "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Retry-After", "1")
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	case errors.Is(err, node.ErrUnavailable):
		// Partial replication: no holder of the session answered.
		// Retryable, and not a not-found (which would log it out).
		m.log.Warn("no holder of the session answered", "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Retry-After", "1")
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	m.log.Error("session error", "err", err, "method", r.Method, "path", r.URL.Path)
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// LoadAndSave is the middleware: it loads the session of the request's
// token (cookie, or header for header clients), hands it to next through
// the request context, and commits what next changed right before the
// response header is written (or when next returns, if it wrote nothing).
//
// Every response gets Vary: Cookie (and the token header, when one is
// configured), since what it holds may depend on the session; wrap only the
// routes that use sessions.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Value(ctxKey{m}).(*state); ok {
			next.ServeHTTP(w, r) // already inside this Manager's LoadAndSave
			return
		}
		addVary(w.Header(), m.vary...)
		st, err := m.load(r)
		if err != nil {
			m.errorFunc(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{m}, st))
		rw := &responseWriter{ResponseWriter: w, m: m, r: r, st: st}
		next.ServeHTTP(rw, r)
		rw.finish()
	})
}

// load reads the session of the request's token. An unknown, expired or
// destroyed token is dropped, never adopted: if the request writes, the
// session is created under a fresh token from the node.
func (m *Manager) load(r *http.Request) (*state, error) {
	st := newState()
	token, header := m.requestToken(r)
	st.header = header
	if token == "" {
		return st, nil
	}
	st.sentVersion = m.requestVersion(r, header)
	// A version that does not parse (tampered with, or from another
	// build) is ignored: the request is served as one without.
	st.version, _ = node.ParseVersion(st.sentVersion)
	ctx := node.WithVersion(r.Context(), &st.version)
	s, err := m.n.Get(ctx, token)
	if errors.Is(err, node.ErrNotFound) {
		st.version = nil
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sessionhttp: load: %w", err)
	}
	err = m.n.Touch(ctx, token)
	if errors.Is(err, node.ErrNotFound) {
		return st, nil // expired between the two calls
	}
	if err != nil {
		return nil, fmt.Errorf("sessionhttp: touch: %w", err)
	}
	st.token = token
	st.deadline = s.Deadline()
	for k, v := range s.Fields() {
		st.vals[k] = &value{raw: v}
	}
	return st, nil
}

// requestVersion returns the session version the request carries.
func (m *Manager) requestVersion(r *http.Request, header bool) string {
	if header {
		return strings.TrimSpace(r.Header.Get(m.cfg.Header.Version))
	}
	if c, err := r.Cookie(m.versionCookie); err == nil {
		return c.Value
	}
	return ""
}

// requestToken returns the token the request carries and whether it is
// served as a header client. Tokens are never read from the URL.
func (m *Manager) requestToken(r *http.Request) (token string, header bool) {
	if h := m.cfg.Header; h.Name != "" {
		if v := r.Header.Get(h.Name); v != "" {
			if !strings.EqualFold(h.Name, "Authorization") {
				return strings.TrimSpace(v), true
			}
			scheme, tok, _ := strings.Cut(strings.TrimSpace(v), " ")
			if strings.EqualFold(scheme, "Bearer") {
				return strings.TrimSpace(tok), true
			}
		}
		if h.Only {
			return "", true
		}
	}
	if c, err := r.Cookie(m.cookieName); err == nil {
		return c.Value, false
	}
	return "", false
}

// commitHeader commits the session and writes the cookie, token or logout
// headers into h. It runs once, right before the response header goes out.
func (m *Manager) commitHeader(ctx context.Context, h http.Header, st *state) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.headerDone = true
	if err := m.flush(ctx, st, true); err != nil {
		return err
	}
	if !m.cfg.Cacheable && (st.token != "" || st.destroyed) {
		h.Set("Cache-Control", "no-store")
	}
	if st.destroyed {
		h.Set("Cache-Control", "no-store")
		if !st.header && !st.issued {
			h.Add("Set-Cookie", m.cookie("").String())
			if m.cfg.ClearSiteData != "" {
				h.Set("Clear-Site-Data", m.cfg.ClearSiteData)
			}
		}
	}
	if st.token != "" && (st.issued || st.resend && !st.header) {
		if err := m.sendToken(ctx, h, st); err != nil {
			return err
		}
	}
	m.sendVersion(h, st)
	return nil
}

// sendVersion hands the session's version to the client when it changed:
// in the version header for header clients, in the version cookie
// otherwise (expired with the session at logout).
func (m *Manager) sendVersion(h http.Header, st *state) {
	v := ""
	if st.token != "" {
		v = st.version.String()
	}
	// A client that carries no version and did not write gets none: reads
	// without a version behave as before (no cookie on read-only pages).
	if v == st.sentVersion || (st.sentVersion == "" && !st.wrote) {
		return
	}
	if st.header {
		if v != "" {
			h.Set(m.cfg.Header.Version, v)
		}
		return
	}
	c := m.cookie(v)
	c.Name = m.versionCookie
	h.Add("Set-Cookie", c.String())
	addCacheControl(h, `no-cache="Set-Cookie"`)
}

// lateCommit commits what the handler changed after the response header
// went out (a streaming handler, a hijacked connection). It can still
// write to an existing session but can no longer issue a new one.
func (m *Manager) lateCommit(ctx context.Context, st *state) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := m.flush(ctx, st, false); err != nil {
		m.log.Error("session changes made after the response started were not saved", "err", err)
	}
}

// flush writes the changed fields to the node: an Update of an existing
// session, or a Create when the request wrote something without a session.
func (m *Manager) flush(ctx context.Context, st *state, canCreate bool) error {
	set, removed := st.changes()
	switch {
	case st.token != "" && len(set)+len(removed) > 0:
		err := m.n.Update(node.WithVersion(ctx, &st.version), st.token, set, removed...)
		if errors.Is(err, node.ErrNotFound) {
			// Expired, or destroyed elsewhere (a logout in another tab or
			// on another peer) while this request ran: the logout wins
			// and these writes go with the session.
			m.log.Debug("session ended during the request; its changes are dropped")
			st.token, st.issued, st.resend = "", false, false
			break
		}
		if err != nil {
			return fmt.Errorf("sessionhttp: commit: %w", err)
		}
		st.wrote = true
	case st.token == "" && (len(set) > 0 || st.renew):
		if !canCreate {
			m.log.Warn("session written after the response started, with no session to write to: a new session cannot be issued any more")
			break
		}
		opts := []node.CreateOption{node.WithIdleTimeout(m.cfg.IdleTimeout), node.WithLifetime(m.cfg.Lifetime), node.WithFields(set)}
		if st.owner != "" {
			opts = append(opts, node.WithOwner(st.owner))
		}
		token, err := m.n.Create(node.WithVersion(ctx, &st.version), opts...)
		if err != nil {
			return fmt.Errorf("sessionhttp: create: %w", err)
		}
		st.token, st.issued, st.renew, st.wrote = token, true, false, true
	}
	clear(st.dirty)
	return nil
}

// sendToken hands the session's token to the client: in the response
// header for header clients, in the cookie otherwise.
func (m *Manager) sendToken(ctx context.Context, h http.Header, st *state) error {
	if st.header {
		h.Set(m.cfg.Header.Response, st.token)
		h.Set("Cache-Control", "no-store")
		return nil
	}
	c := m.cookie(st.token)
	if m.cfg.Cookie.Persist || st.rememberMe(m.cfg.Codec) {
		// The expiry comes from the node's own view (its clock), right
		// after this request created, renewed or touched the session.
		s, err := m.n.Get(ctx, st.token)
		if errors.Is(err, node.ErrNotFound) {
			return nil // ended under our feet: nothing to send
		}
		if err != nil {
			return fmt.Errorf("sessionhttp: cookie expiry: %w", err)
		}
		remaining := s.Deadline().Sub(s.LastAccess())
		c.MaxAge = max(1, int((remaining+time.Second-1)/time.Second))
		c.Expires = s.Deadline().Add(time.Second - 1).Truncate(time.Second)
	}
	h.Add("Set-Cookie", c.String())
	addCacheControl(h, `no-cache="Set-Cookie"`)
	return nil
}

// cookie returns the session cookie holding token; "" expires it.
func (m *Manager) cookie(token string) *http.Cookie {
	c := &http.Cookie{
		Name:     m.cookieName,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   !m.cfg.Cookie.Insecure,
		SameSite: m.cfg.Cookie.SameSite,
	}
	if token == "" {
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
	}
	return c
}

// rememberMe reads RememberMe's choice; the caller holds st.mu.
func (st *state) rememberMe(c Codec) bool {
	v, ok := st.vals[persistKey]
	if !ok {
		return false
	}
	x, err := c.Decode(v.raw)
	b, _ := x.(bool)
	return err == nil && b
}

// addVary adds names to the Vary header, once each.
func addVary(h http.Header, names ...string) {
	for _, name := range names {
		if !headerHasToken(h, "Vary", name) {
			h.Add("Vary", name)
		}
	}
}

// addCacheControl adds a Cache-Control directive unless the header already
// says no-store.
func addCacheControl(h http.Header, directive string) {
	if headerHasToken(h, "Cache-Control", "no-store") || headerHasToken(h, "Cache-Control", directive) {
		return
	}
	h.Add("Cache-Control", directive)
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
