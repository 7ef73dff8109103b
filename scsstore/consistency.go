package scsstore

import (
	"net/http"
	"strings"

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
// behaves as without Consistent.
func Consistent(cookie scs.SessionCookie, next http.Handler) http.Handler {
	name := cookie.Name + "_version"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent := ""
		if c, err := r.Cookie(name); err == nil {
			sent = c.Value
		}
		v, err := node.ParseVersion(sent)
		if err != nil {
			v, sent = nil, "" // tampered with: served as a request without
		}
		r = r.WithContext(node.WithVersion(r.Context(), &v))
		vw := &versionWriter{ResponseWriter: w, set: func(h http.Header) {
			now := v.String()
			if now == sent || now == "" {
				return
			}
			c := &http.Cookie{Name: name, Value: now, Path: cookie.Path, Domain: cookie.Domain, HttpOnly: cookie.HttpOnly,
				Secure: cookie.Secure, SameSite: cookie.SameSite, Partitioned: cookie.Partitioned}
			h.Add("Set-Cookie", c.String())
		}}
		next.ServeHTTP(vw, r)
		vw.commit()
	})
}

// versionWriter adds the version cookie right before the header goes out:
// scs has committed the session by then.
type versionWriter struct {
	http.ResponseWriter
	set  func(http.Header)
	done bool
}

func (w *versionWriter) commit() {
	if !w.done {
		w.done = true
		// scs writes Set-Cookie for a destroyed session: the version goes
		// with it.
		for _, c := range w.Header().Values("Set-Cookie") {
			if strings.Contains(c, "Max-Age=0") || strings.Contains(c, "Max-Age=-1") {
				return
			}
		}
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
