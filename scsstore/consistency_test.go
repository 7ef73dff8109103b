package scsstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/scsstore"
)

// The alternating counter through scs on two peers: a browser alternates
// between the apps of two peers with no delay, 200 increments, none lost,
// thanks to the version cookie of Consistent.
func TestConsistentAlternatingCounter(t *testing.T) {
	t.Parallel()
	// Patient reads: the default 200 ms ConsistencyWait fails a read on
	// a machine loaded enough to delay replication that long (seen in CI
	// at load 18); this test is about no increment being lost.
	nodes := startNodes(t, 2, func(cfg *node.Config) { cfg.ConsistencyWait = 10 * time.Second })
	var urls []string
	for _, n := range nodes {
		sm := scs.New()
		sm.Store = scsstore.New(n)
		sm.Cookie.Secure = false
		mux := http.NewServeMux()
		mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) {
			c := sm.GetInt(r.Context(), "n") + 1
			sm.Put(r.Context(), "n", c)
			io.WriteString(w, strconv.Itoa(c))
		})
		srv := httptest.NewServer(scsstore.Consistent(sm.Cookie, sm.LoadAndSave(mux)))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	for i := range 200 {
		resp, err := client.Post(urls[i%2]+"/inc", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != strconv.Itoa(i+1) {
			t.Fatalf("increment %d on peer %d: %d %q", i+1, i%2, resp.StatusCode, body)
		}
	}
}

// The version a client shows is of the session it shows: a login that
// renews the token, a login after a logout and the first write after the
// session expired start a new session, which the old version says nothing
// of. Consistent applied it to the new token, so each of them waited
// ConsistencyWait and failed (500), and kept failing, as logout left the
// version cookie in place. With and without scs's HashTokenInStore (the
// store then sees hashes of the cookie's token).
func TestConsistentAcrossNewSessions(t *testing.T) {
	t.Parallel()
	for _, hashed := range []bool{false, true} {
		n := startNodes(t, 1, nil)[0]
		sm := scs.New()
		sm.Store = scsstore.New(n)
		sm.Cookie.Secure = false
		sm.IdleTimeout = time.Second
		sm.HashTokenInStore = hashed
		mux := http.NewServeMux()
		mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "n", sm.GetInt(r.Context(), "n")+1)
		})
		mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
			if err := sm.RenewToken(r.Context()); err != nil {
				t.Error(err)
			}
			sm.Put(r.Context(), "user", "ada")
		})
		mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
			if err := sm.Destroy(r.Context()); err != nil {
				t.Error(err)
			}
		})
		srv := httptest.NewServer(scsstore.Consistent(sm.Cookie, sm.LoadAndSave(mux)))
		t.Cleanup(srv.Close)
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		versionCookie := func() bool {
			u, _ := url.Parse(srv.URL)
			for _, c := range jar.Cookies(u) {
				if c.Name == sm.Cookie.Name+"_version" {
					return true
				}
			}
			return false
		}
		for i, step := range []string{"count", "count", "login", "logout", "login", "idle", "count"} {
			if step == "idle" {
				time.Sleep(sm.IdleTimeout + 200*time.Millisecond)
				continue
			}
			resp, err := client.Post(srv.URL+"/"+step, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("hashed %v, step %d (%s): %d", hashed, i, step, resp.StatusCode)
			}
			if has := versionCookie(); has == (step == "logout") {
				t.Fatalf("hashed %v, after %s: version cookie held %v", hashed, step, has)
			}
		}
	}
}

// The version cookie a response sets is that of the session it leaves the
// client with, never that of another session the handler touched: an
// admin handler that walks every session with scs's Iterate and commits
// some of them sent back the version of the last one it committed, and
// the admin's next requests waited for a version their own session could
// never reach, and failed, for good.
func TestConsistentVersionIsOfTheClientsSession(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, func(cfg *node.Config) { cfg.ConsistencyWait = 300 * time.Millisecond })[0]
	sm := scs.New()
	st, err := scsstore.NewWithOptions(n, scsstore.Options{Lifetime: 24 * time.Hour, Iterable: true})
	if err != nil {
		t.Fatal(err)
	}
	sm.Store = st
	sm.Cookie.Secure = false
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "who", r.URL.Query().Get("who"))
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		_ = sm.GetString(r.Context(), "who")
	})
	mux.HandleFunc("POST /flag", func(w http.ResponseWriter, r *http.Request) {
		err := sm.Iterate(r.Context(), func(ctx context.Context) error {
			if sm.GetString(ctx, "who") == "admin" {
				return nil
			}
			sm.Put(ctx, "reauth", true)
			_, _, err := sm.Commit(ctx)
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(scsstore.Consistent(sm.Cookie, sm.LoadAndSave(mux)))
	t.Cleanup(srv.Close)
	newClient := func() *http.Client { jar, _ := cookiejar.New(nil); return &http.Client{Jar: jar} }
	admin, bob := newClient(), newClient()
	do := func(c *http.Client, method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	do(admin, "POST", "/put?who=admin")
	do(bob, "POST", "/put?who=bob")
	if c := do(admin, "POST", "/flag"); c != 200 {
		t.Fatalf("flag: %d", c)
	}
	for i := range 3 {
		if c := do(admin, "GET", "/get"); c != 200 {
			t.Fatalf("admin's request %d after Iterate: %d", i, c)
		}
	}
	if c := do(bob, "GET", "/get"); c != 200 {
		t.Fatalf("bob's request after the admin's Iterate: %d", c)
	}
}
