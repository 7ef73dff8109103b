package scsstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/node"
)

// offsetClock is a node clock that tests move forward.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// startNodes starts count real nodes over libp2p on 127.0.0.1, each
// bootstrapping to the first, and waits until they see each other.
func startNodes(t testing.TB, count int, tweak func(cfg *node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range count {
		cfg := node.DefaultConfig()
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.SyncInterval = 200 * time.Millisecond
		cfg.SyncTimeout = 2 * time.Second
		if i > 0 {
			for _, a := range nodes[0].Transport().Addrs() {
				cfg.Transport.Bootstrap = append(cfg.Transport.Bootstrap, a.String())
			}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := node.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		nodes = append(nodes, n)
	}
	for _, n := range nodes[1:] {
		eventually(t, 15*time.Second, "nodes to connect", func() bool { return len(n.Peers()) == 1 })
	}
	return nodes
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
