package sessionhttp_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

// quiet discards logs in tests.
var quiet = slog.New(slog.DiscardHandler)

// startNodes starts count real nodes (meshtest.Start).
func startNodes(t testing.TB, count int, tweak func(i int, cfg *node.Config)) []*node.Node {
	t.Helper()
	return meshtest.Start(t, count, tweak)
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	meshtest.Eventually(t, within, what, cond)
}

// testConfig is DefaultConfig with logs discarded and, for plain-http test
// servers, insecure cookies.
func testConfig(insecure bool) sessionhttp.Config {
	cfg := sessionhttp.DefaultConfig()
	cfg.Logger = quiet
	cfg.Cookie.Insecure = insecure
	return cfg
}

func newManager(t testing.TB, n *node.Node, cfg sessionhttp.Config) *sessionhttp.Manager {
	t.Helper()
	m, err := sessionhttp.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testHandler serves:
//
//	GET  /get?k=K            the string value of K
//	POST /put?k=K&v=V        Put(K, V)
//	POST /login?user=U       RenewToken, then Put("user", U)
//	POST /logout             Destroy
func testHandler(m *sessionhttp.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, m.GetString(r.Context(), r.URL.Query().Get("k")))
	})
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Put(r.Context(), r.URL.Query().Get("k"), r.URL.Query().Get("v")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = m.Put(r.Context(), "user", r.URL.Query().Get("user"))
		io.WriteString(w, "welcome")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "bye")
	})
	return m.LoadAndSave(mux)
}

// serve starts an http (or https) test server for h.
func serve(t testing.TB, h http.Handler, tls bool) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request with the given cookie (nil for none) and returns
// the response and its body.
func call(t testing.TB, srv *httptest.Server, method, path string, cookie *http.Cookie, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// sessionCookie returns the cookie named name in resp, or nil.
func sessionCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// q builds a query string.
func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// hasToken reports whether the comma-separated header values hold token.
func hasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

// setCookies returns the Set-Cookie lines of resp that set cookie name.
func setCookies(resp *http.Response, name string) []string {
	var out []string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, name+"=") {
			out = append(out, v)
		}
	}
	return out
}
