package sessionhttp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

func ExampleManager() {
	ctx := context.Background()
	nodeCfg := p2pnode.DefaultConfig() // one peer over libp2p, in memory
	nodeCfg.Logger = slog.New(slog.DiscardHandler)
	n, err := p2pnode.Open(ctx, nodeCfg)
	if err != nil {
		panic(err)
	}
	defer n.Close(ctx)

	m, err := sessionhttp.New(n.Node, sessionhttp.DefaultConfig())
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RenewToken(r.Context()); err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		m.Put(r.Context(), "user", r.FormValue("user"))
	})
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		count := m.GetInt(r.Context(), "count") + 1
		m.Put(r.Context(), "count", count)
		fmt.Fprintf(w, "%s has counted to %d", m.GetString(r.Context(), "user"), count)
	})
	h := m.LoadAndSave(mux)

	// Log in: the response sets the cookie.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "https://example.com/login?user=ann", nil))
	cookie := rec.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.Secure, cookie.SameSite == http.SameSiteLaxMode)

	// Two requests with the cookie.
	for range 2 {
		req := httptest.NewRequest("POST", "https://example.com/count", nil)
		req.AddCookie(cookie)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		fmt.Println(string(body))
	}
	// Output:
	// __Host-session true true true
	// ann has counted to 1
	// ann has counted to 2
}
