package scsstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
)

// startNodes starts count real nodes (meshtest.Start), all configured by
// tweak.
func startNodes(t testing.TB, count int, tweak func(cfg *node.Config)) []*node.Node {
	t.Helper()
	var each func(int, *node.Config)
	if tweak != nil {
		each = func(_ int, cfg *node.Config) { tweak(cfg) }
	}
	return meshtest.Start(t, count, each)
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	meshtest.Eventually(t, within, what, cond)
}

// scsApp serves, through sm.LoadAndSave:
//
//	GET  /get?k=K       the string value of K
//	POST /put?k=K&v=V   Put(K, V)
//	POST /login         RenewToken
//	POST /logout        Destroy
//
// and whatever extra adds.
func scsApp(t testing.TB, sm *scs.SessionManager, extra func(*http.ServeMux)) *httptest.Server {
	mux := http.NewServeMux()
	if extra != nil {
		extra(mux)
	}
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), r.URL.Query().Get("k")))
	})
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), r.URL.Query().Get("k"), r.URL.Query().Get("v"))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request with cookie (nil for none); it returns the
// session cookie the response set (nil if none) and the body.
func call(t testing.TB, srv *httptest.Server, method, path string, cookie *http.Cookie) (*http.Cookie, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
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
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			return c, string(body)
		}
	}
	return nil, string(body)
}
