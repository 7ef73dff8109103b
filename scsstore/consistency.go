package scsstore

import (
	"context"
	"net/http"
	"strings"
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
// new one from RenewToken, or a session started after the shown one ended)
// start from no version, and the cookie leaves with the session's at
// Destroy.
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
		if _, err := r.Cookie(cookie.Name); err != nil {
			// No session shown: the version is of one that ended
			// (its cookie gone at logout or expiry) and says nothing
			// of the session this request may start.
			v = nil
		}
		b := &bound{v: &v}
		r = r.WithContext(context.WithValue(r.Context(), boundKey{}, b))
		cookieOf := func(value string, maxAge int) string {
			c := &http.Cookie{Name: name, Value: value, MaxAge: maxAge, Path: cookie.Path, Domain: cookie.Domain, HttpOnly: cookie.HttpOnly,
				Secure: cookie.Secure, SameSite: cookie.SameSite, Partitioned: cookie.Partitioned}
			return c.String()
		}
		vw := &versionWriter{ResponseWriter: w, set: func(h http.Header, ended bool) {
			now := v.String()
			switch {
			case ended && sent != "":
				// The session's cookie goes: so does its version.
				h.Add("Set-Cookie", cookieOf("", -1))
			case ended, now == sent, now == "":
			default:
				h.Add("Set-Cookie", cookieOf(now, 0))
			}
		}}
		next.ServeHTTP(vw, r)
		vw.commit()
	})
}

// bound is the version a request carries, bound to the first session the
// Store is asked about in it (the one whose cookie the client showed). A
// call about another token, a session scs's RenewToken made or one started
// after the shown one ended, starts from an empty version: the shown
// version says nothing of it, and waiting for this peer to reach it made
// every login with a session, every login after a logout and the first
// write after an expiry fail with ErrStale.
type bound struct {
	mu    sync.Mutex
	token string
	v     *node.Version
}

type boundKey struct{}

// versioned returns ctx for a Store call about token: with the request's
// version when Consistent carries one.
func versioned(ctx context.Context, token string) context.Context {
	b, _ := ctx.Value(boundKey{}).(*bound)
	if b == nil {
		return ctx
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.token == "":
		b.token = token
	case b.token != token:
		b.token, *b.v = token, nil
	}
	return node.WithVersion(ctx, b.v)
}

// versionWriter adds the version cookie right before the header goes out:
// scs has committed the session by then.
type versionWriter struct {
	http.ResponseWriter
	set  func(h http.Header, ended bool)
	done bool
}

func (w *versionWriter) commit() {
	if !w.done {
		w.done = true
		// scs writes an expired Set-Cookie for a destroyed session.
		ended := false
		for _, c := range w.Header().Values("Set-Cookie") {
			ended = ended || strings.Contains(c, "Max-Age=0") || strings.Contains(c, "Max-Age=-1")
		}
		w.set(w.Header(), ended)
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
