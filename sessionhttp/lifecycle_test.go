package sessionhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
)

func TestRenewToken(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(false))
	srv := serve(t, testHandler(m), true)

	resp, _ := call(t, srv, "POST", "/put"+q("k", "cart", "v", "3 books"), nil)
	before := sessionCookie(resp, "__Host-session")
	resp, _ = call(t, srv, "POST", "/login"+q("user", "ann"), before)
	after := sessionCookie(resp, "__Host-session")
	if after == nil || after.Value == before.Value {
		t.Fatalf("login did not issue a new token: %q", resp.Header.Values("Set-Cookie"))
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "cart"), after); body != "3 books" {
		t.Fatalf("renewed session lost its values: cart=%q", body)
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "user"), after); body != "ann" {
		t.Fatalf("write after renew: user=%q", body)
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "cart"), before); body != "" {
		t.Fatalf("the old token still reads the session: %q", body)
	}
	if _, err := n.Get(context.Background(), before.Value); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("old token: %v", err)
	}
	// The old cookie cannot be used to write either: that makes a new,
	// separate session.
	resp, _ = call(t, srv, "POST", "/put"+q("k", "user", "v", "mallory"), before)
	if c := sessionCookie(resp, "__Host-session"); c == nil || c.Value == before.Value || c.Value == after.Value {
		t.Fatalf("write with the old token: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "user"), after); body != "ann" {
		t.Fatalf("write through the old token reached the new session: user=%q", body)
	}

	// A visitor without a session who logs in gets one.
	resp, _ = call(t, srv, "POST", "/login"+q("user", "bob"), nil)
	if c := sessionCookie(resp, "__Host-session"); c == nil {
		t.Fatal("login without a session issued no cookie")
	}
}

func TestDestroyAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, nil)
	srvA := serve(t, testHandler(newManager(t, nodes[0], testConfig(false))), true)
	srvB := serve(t, testHandler(newManager(t, nodes[1], testConfig(false))), true)

	resp, _ := call(t, srvA, "POST", "/login"+q("user", "ann"), nil)
	c := sessionCookie(resp, "__Host-session")
	if c == nil {
		t.Fatal("no cookie")
	}
	eventually(t, 10*time.Second, "the session to reach node B", func() bool {
		_, body := call(t, srvB, "GET", "/get"+q("k", "user"), c)
		return body == "ann"
	})

	resp, _ = call(t, srvA, "POST", "/logout", c)
	gone := sessionCookie(resp, "__Host-session")
	if gone == nil || gone.Value != "" || gone.MaxAge >= 0 {
		t.Fatalf("logout did not expire the cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("logout Cache-Control = %q", got)
	}
	if got := resp.Header.Get("Clear-Site-Data"); got != `"cookies"` {
		t.Fatalf("logout Clear-Site-Data = %q", got)
	}
	if _, body := call(t, srvA, "GET", "/get"+q("k", "user"), c); body != "" {
		t.Fatalf("node A still serves the destroyed session: %q", body)
	}
	eventually(t, 10*time.Second, "the logout to reach node B", func() bool {
		_, body := call(t, srvB, "GET", "/get"+q("k", "user"), c)
		return body == ""
	})
	// On B the old cookie is refused for writes too: a new token, and the
	// destroyed session stays destroyed.
	resp, _ = call(t, srvB, "POST", "/put"+q("k", "user", "v", "ann"), c)
	if nc := sessionCookie(resp, "__Host-session"); nc == nil || nc.Value == c.Value {
		t.Fatalf("node B adopted the destroyed token: %q", resp.Header.Values("Set-Cookie"))
	}
	for _, n := range nodes {
		if _, err := n.Get(context.Background(), c.Value); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("destroyed session visible on %s: %v", n.ID(), err)
		}
	}
}

func TestDestroyThenWriteStartsNewSession(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Destroy(r.Context()); err != nil {
			t.Error(err)
		}
		if err := m.Put(r.Context(), "flash", "signed out"); err != nil {
			t.Error(err)
		}
	}))
	resp, _ := call(t, serve(t, testHandler(m), false), "POST", "/put"+q("k", "user", "v", "ann"), nil)
	old := sessionCookie(resp, "session")
	resp, _ = call(t, serve(t, h, false), "POST", "/", old)
	nc := sessionCookie(resp, "session")
	if nc == nil || nc.Value == "" || nc.Value == old.Value {
		t.Fatalf("want a new session after Destroy+Put, got %q", resp.Header.Values("Set-Cookie"))
	}
	if len(setCookies(resp, "session")) != 1 || resp.Header.Get("Clear-Site-Data") != "" {
		t.Fatalf("the new cookie must not be cleared with the old one: %q, Clear-Site-Data %q",
			resp.Header.Values("Set-Cookie"), resp.Header.Get("Clear-Site-Data"))
	}
	s, err := n.Get(context.Background(), nc.Value)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("user"); ok {
		t.Fatal("the new session inherited the destroyed one's values")
	}
}

// TestConcurrentRequestsMergePerField holds two requests on one session,
// on the same node and on two nodes, until both have loaded it; each then
// changes its own key. Committing whole sessions would write the other
// key's stale value back over the other request's change.
func TestConcurrentRequestsMergePerField(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, nil)
	var loaded sync.WaitGroup
	var release chan struct{}
	srvs := make([]*httptest.Server, 2)
	for i, n := range nodes {
		m := newManager(t, n, testConfig(true))
		mux := http.NewServeMux()
		mux.Handle("POST /put", testHandler(m))
		mux.Handle("POST /slow", m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = m.Keys(r.Context()) // the request has read the whole session
			loaded.Done()
			<-release
			if err := m.Put(r.Context(), r.URL.Query().Get("k"), "new"); err != nil {
				t.Error(err)
			}
			io.WriteString(w, "ok")
		})))
		srvs[i] = serve(t, mux, false)
	}

	for round, pair := range [][2]int{{0, 0}, {0, 1}} {
		keys := [2]string{fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)}
		resp, _ := call(t, srvs[0], "POST", "/put"+q("k", keys[0], "v", "old"), nil)
		c := sessionCookie(resp, "session")
		call(t, srvs[0], "POST", "/put"+q("k", keys[1], "v", "old"), c)
		eventually(t, 10*time.Second, "the session to reach node B", func() bool {
			s, err := nodes[1].Get(context.Background(), c.Value)
			_, ok := s.Get(keys[1])
			return err == nil && ok
		})

		loaded.Add(2)
		release = make(chan struct{})
		var done sync.WaitGroup
		for j := range 2 {
			done.Add(1)
			go func() {
				defer done.Done()
				req, _ := http.NewRequest("POST", srvs[pair[j]].URL+"/slow"+q("k", keys[j]), nil)
				req.AddCookie(c)
				resp, err := srvs[pair[j]].Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if len(setCookies(resp, c.Name)) != 0 {
					t.Error("a write to an existing session re-sent the cookie")
				}
			}()
		}
		loaded.Wait()
		close(release)
		done.Wait()
		for _, n := range nodes {
			eventually(t, 10*time.Second, "both changes on "+string(n.ID()), func() bool {
				s, err := n.Get(context.Background(), c.Value)
				a, _ := s.Get(keys[0])
				b, _ := s.Get(keys[1])
				return err == nil && string(a) == "\x01new" && string(b) == "\x01new"
			})
		}
	}
}

func TestExpiredSessionsRefused(t *testing.T) {
	t.Parallel()
	clock := &meshtest.OffsetClock{}
	n := startNodes(t, 1, func(_ int, cfg *node.Config) { cfg.Clock = clock })[0]
	cfg := testConfig(false)
	cfg.IdleTimeout = 10 * time.Minute
	cfg.Lifetime = time.Hour
	srv := serve(t, testHandler(newManager(t, n, cfg)), true)

	login := func() *http.Cookie {
		resp, _ := call(t, srv, "POST", "/login"+q("user", "ann"), nil)
		return sessionCookie(resp, "__Host-session")
	}
	read := func(c *http.Cookie) string {
		_, body := call(t, srv, "GET", "/get"+q("k", "user"), c)
		return body
	}

	// Idle timeout: requests keep the session alive, silence ends it.
	c := login()
	for range 3 {
		clock.Advance(8 * time.Minute)
		if got := read(c); got != "ann" {
			t.Fatalf("session expired while in use: %q", got)
		}
	}
	clock.Advance(11 * time.Minute)
	if got := read(c); got != "" {
		t.Fatalf("idle session still served: %q", got)
	}
	resp, _ := call(t, srv, "POST", "/put"+q("k", "user", "v", "ann"), c)
	if nc := sessionCookie(resp, "__Host-session"); nc == nil || nc.Value == c.Value {
		t.Fatalf("expired token not replaced: %q", resp.Header.Values("Set-Cookie"))
	}

	// Absolute lifetime: however active, the session ends after an hour.
	c = login()
	for i := range 6 {
		clock.Advance(9 * time.Minute)
		if got := read(c); got != "ann" {
			t.Fatalf("session ended early, after %d minutes: %q", 9*(i+1), got)
		}
	}
	clock.Advance(9 * time.Minute) // 63 minutes in, never idle for more than 9
	if got := read(c); got != "" {
		t.Fatalf("session outlived its absolute lifetime: %q", got)
	}
}
