package scsstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/node"
)

// Consistent gives an scs application behind a balancer without sticky
// routing read-your-writes and monotonic reads on every peer: wrap scs's
// LoadAndSave with it,
//
//	handler := scsstore.Consistent(sessionManager.Cookie, sessionManager.LoadAndSave(mux))
//
// It carries the session's version (node.Version) in a second cookie,
// named cookie.Name + "_version" with the session cookie's attributes, and
// hands it to the Store through the request's context, so that a peer
// answers scs's Find only from a copy holding what the client saw (it
// waits for replication, asks the peers that wrote it, and fails after
// node.Config.ConsistencyWait with an error wrapping node.ErrStale, which
// scs passes to its ErrorFunc). A request without the version cookie
// behaves as without Consistent. The version is that of the session the
// client shows: the Store's calls about another token in the request (a
// new one from RenewToken, a session started after the shown one ended,
// sessions walked with Iterate) start from no version; the response
// carries the version of the session it leaves the client with, and the
// cookie leaves with the session's at Destroy.
func Consistent(cookie scs.SessionCookie, next http.Handler) http.Handler {
	name := cookie.Name + "_version"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent := ""
		if c, err := r.Cookie(name); err == nil {
			sent = c.Value
		}
		v, err := node.ParseVersion(sent)
		if err != nil {
			v = nil // tampered with: served as a request without
		}
		shown := ""
		if c, err := r.Cookie(cookie.Name); err == nil {
			shown = c.Value
		} else {
			// No session shown: the version is of one that ended
			// (its cookie gone at logout or expiry) and says nothing
			// of the session this request may start.
			v = nil
		}
		b := &bound{shown: v, versions: map[string]*node.Version{}}
		r = r.WithContext(context.WithValue(r.Context(), boundKey{}, b))
		cookieOf := func(value string, maxAge int) string {
			c := &http.Cookie{Name: name, Value: value, MaxAge: maxAge, Path: cookie.Path, Domain: cookie.Domain, HttpOnly: cookie.HttpOnly,
				Secure: cookie.Secure, SameSite: cookie.SameSite, Partitioned: cookie.Partitioned}
			return c.String()
		}
		vw := &versionWriter{ResponseWriter: w, set: func(h http.Header) {
			// The version to send is that of the session the response
			// leaves the client with: the one of the session cookie it
			// sets, else the one the client showed; never that of
			// another session the handler touched (scs's Iterate).
			token, ended := sessionCookie(h, cookie.Name)
			switch {
			case ended && sent != "":
				// The session's cookie goes: so does its version.
				h.Add("Set-Cookie", cookieOf("", -1))
				return
			case ended:
				return
			case token == "":
				token = shown
			}
			if now := b.of(token).String(); now != sent && now != "" {
				h.Add("Set-Cookie", cookieOf(now, 0))
			}
		}}
		next.ServeHTTP(vw, r)
		vw.commit()
	})
}

// sessionCookie returns the token of the session cookie named name that
// header h sets, "" if it sets none, and whether it expires it (scs
// writes an expired cookie for a destroyed session).
func sessionCookie(h http.Header, name string) (token string, ended bool) {
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != name {
			continue
		}
		if c.MaxAge < 0 || c.Value == "" {
			return "", true
		}
		token = c.Value
	}
	return token, false
}

// bound holds, for one request, the version of each session the Store was
// asked about. The first is the session whose cookie the client showed
// (scs's LoadAndSave finds it before anything else) and starts from the
// version the client showed; any other (a new token from RenewToken, a
// session started after the shown one ended, sessions a handler walks with
// scs's Iterate) starts from none: the shown version says nothing of them.
// Applying it to them made every login with a session, every login after
// a logout and the first write after an expiry wait and fail with
// ErrStale.
type bound struct {
	mu       sync.Mutex
	shown    node.Version
	first    bool // the first token has been seen
	versions map[string]*node.Version
}

type boundKey struct{}

// versioned returns ctx for a Store call about token: with that session's
// version in this request, when Consistent carries one.
func versioned(ctx context.Context, token string) context.Context {
	b, _ := ctx.Value(boundKey{}).(*bound)
	if b == nil {
		return ctx
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.versions[token]
	if !ok {
		p = new(node.Version)
		if !b.first {
			*p = b.shown
		}
		b.first = true
		b.versions[token] = p
	}
	return node.WithVersion(ctx, p)
}

// of returns the version of the session whose cookie holds token: the
// Store saw token itself, or its hash under scs's HashTokenInStore.
func (b *bound) of(token string) node.Version {
	if token == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.versions[token]; ok {
		return *p
	}
	h := sha256.Sum256([]byte(token)) // as scs hashes tokens
	if p, ok := b.versions[base64.RawURLEncoding.EncodeToString(h[:])]; ok {
		return *p
	}
	return nil
}

// versionWriter adds the version cookie right before the header goes out:
// scs has committed the session by then.
type versionWriter struct {
	http.ResponseWriter
	set  func(h http.Header)
	done bool
}

func (w *versionWriter) commit() {
	if !w.done {
		w.done = true
		w.set(w.Header())
	}
}

func (w *versionWriter) WriteHeader(code int) {
	w.commit()
	w.ResponseWriter.WriteHeader(code)
}

func (w *versionWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *versionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
