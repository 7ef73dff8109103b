package daemon

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/transport"
)

// TokenHeader carries the session token of a request. Tokens never appear
// in URLs, where logs and proxies would keep them.
const TokenHeader = "X-Session-Token"

// VersionHeader carries a session's version (node.Version): every answer
// about a session gives it, and a request that sends it back is answered
// from data at least that recent, or with 503 stale_session.
const VersionHeader = "X-Session-Version"

// APIOptions configure NewHandler.
type APIOptions struct {
	// Node serves the sessions. Required.
	Node *node.Node
	// Transport is the node's libp2p transport (p2pnode.Node.Transport),
	// whose members /v1/peers and /v1/status list; nil for a node on
	// another network.
	Transport *transport.Transport
	// BearerToken, when set, is required on /v1/ and /metrics as
	// "Authorization: Bearer <token>".
	BearerToken string
	// MaxBodyBytes bounds a request body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxLifetime bounds a session's idle timeout and lifetime. Default
	// crdt.DefaultLimits().MaxLifetime.
	MaxLifetime time.Duration
	// Region is this peer's region, shown by /v1/peers.
	Region string
	// Gatherer serves /metrics; nil answers 404 there.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz: nil error when ready. Nil means
	// always ready.
	Ready func() error
	// Started, DataDir, Durability and Encrypted describe the peer in
	// /v1/status.
	Started    time.Time
	DataDir    string
	Durability string
	Encrypted  bool
	// Logger receives a debug line per request (never a token) and the
	// errors answered with 500. Nil discards.
	Logger *slog.Logger
}

// api serves the HTTP API of one node.
type api struct {
	o APIOptions
	n *node.Node
}

// NewHandler returns the HTTP API of a node, as documented in
// docs/http-api.md.
func NewHandler(o APIOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = crdt.DefaultLimits().MaxLifetime
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{o: o, n: o.Node}

	v1 := http.NewServeMux()
	route(v1, "/v1/sessions", map[string]http.HandlerFunc{"POST": a.create})
	route(v1, "/v1/session", map[string]http.HandlerFunc{"GET": a.read, "PATCH": a.update, "DELETE": a.destroy})
	route(v1, "/v1/session/touch", map[string]http.HandlerFunc{"POST": a.touch})
	route(v1, "/v1/session/renew", map[string]http.HandlerFunc{"POST": a.renew})
	route(v1, "/v1/session/owner", map[string]http.HandlerFunc{"PUT": a.setOwner})
	route(v1, "/v1/owners/{owner}/sessions", map[string]http.HandlerFunc{"GET": a.ownerSessions, "DELETE": a.revokeOwner})
	route(v1, "/v1/owners/{owner}/sessions/{id}", map[string]http.HandlerFunc{"DELETE": a.destroyOwned})
	route(v1, "/v1/peers", map[string]http.HandlerFunc{"GET": a.peers})
	route(v1, "/v1/peers/{id}", map[string]http.HandlerFunc{"DELETE": a.forget})
	route(v1, "/v1/status", map[string]http.HandlerFunc{"GET": a.status})
	route(v1, "/v1/sync", map[string]http.HandlerFunc{"POST": a.sync})
	route(v1, "/v1/backup", map[string]http.HandlerFunc{"GET": a.backup})
	metrics := http.NotFoundHandler()
	if o.Gatherer != nil {
		metrics = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{o.Logger}})
	}
	route(v1, "/metrics", map[string]http.HandlerFunc{"GET": metrics.ServeHTTP})
	v1.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, codeNotFound, "no such endpoint: %s", r.URL.Path))
	})

	top := http.NewServeMux()
	route(top, "/healthz", map[string]http.HandlerFunc{"GET": a.healthz})
	route(top, "/readyz", map[string]http.HandlerFunc{"GET": a.readyz})
	top.Handle("/", a.authorize(v1))
	return a.logRequests(cleanPathsOnly(top))
}

// cleanPathsOnly answers 404 in JSON to a path that is not in clean form
// ("//v1/session", "/v1/sessions/../session"): ServeMux would redirect it
// with an HTML body, and an API has no business resolving dot segments.
func cleanPathsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		c := path.Clean(p)
		if strings.HasSuffix(p, "/") && c != "/" {
			c += "/"
		}
		if p != c {
			writeError(w, errorf(http.StatusNotFound, codeNotFound, "no such endpoint: %s (paths must be in clean form)", p))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// route registers handlers by method on path, and a JSON 405 with an Allow
// header for every other method. GET also answers HEAD.
func route(mux *http.ServeMux, path string, byMethod map[string]http.HandlerFunc) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		h, ok := byMethod[m]
		if !ok {
			continue
		}
		mux.HandleFunc(m+" "+path, h)
		allow = append(allow, m)
		if m == "GET" {
			allow = append(allow, "HEAD")
		}
	}
	allowed := strings.Join(allow, ", ")
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		writeError(w, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, path, allowed))
	})
}

// authorize requires the bearer token, when one is configured.
func (a *api) authorize(next http.Handler) http.Handler {
	if a.o.BearerToken == "" {
		return next
	}
	want := sha256.Sum256([]byte(a.o.BearerToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessionmesh"`)
			writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized, "missing or wrong API bearer token (Authorization: Bearer <token>)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status of a response for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *api) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		a.o.Logger.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

// slogPrinter adapts a logger to promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics: serving /metrics", "err", v) }
