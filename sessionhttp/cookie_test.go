package sessionhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(false) // the defaults: Secure
	m := newManager(t, n, cfg)
	srv := serve(t, testHandler(m), true)

	resp, _ := call(t, srv, "POST", "/put"+q("k", "color", "v", "blue"), nil)
	all := resp.Header.Values("Set-Cookie")
	raw := setCookies(resp, "__Host-session")
	if len(raw) != 1 || len(all) != 2 {
		t.Fatalf("want the session cookie and its version cookie, got %q", all)
	}
	// The version cookie has the session cookie's attributes.
	vc := setCookies(resp, "__Host-session-version")
	if len(vc) != 1 || strings.TrimPrefix(vc[0], "__Host-session-version="+sessionCookie(resp, "__Host-session-version").Value) !=
		strings.TrimPrefix(raw[0], "__Host-session="+sessionCookie(resp, "__Host-session").Value) {
		t.Fatalf("version cookie %q, session cookie %q", vc, raw)
	}
	c := sessionCookie(resp, "__Host-session")
	if c == nil {
		t.Fatalf("no __Host-session cookie in %q", raw)
	}
	if m.CookieName() != "__Host-session" {
		t.Fatalf("CookieName() = %q", m.CookieName())
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie attributes: %q", raw[0])
	}
	if c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Fatalf("default cookie must be a session cookie (no Max-Age, no Expires): %q", raw[0])
	}
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(raw[0], want) {
			t.Fatalf("Set-Cookie %q lacks %s", raw[0], want)
		}
	}
	if strings.Contains(strings.ToLower(raw[0]), "domain=") {
		t.Fatalf("Set-Cookie %q has a Domain", raw[0])
	}
	if _, ok := node.SessionID(c.Value); !ok {
		t.Fatalf("cookie value %q is not a 256-bit node token", c.Value)
	}
	if !hasToken(resp.Header, "Vary", "Cookie") {
		t.Fatalf("no Vary: Cookie, got %q", resp.Header.Values("Vary"))
	}
	// The response carries a live session: no-store by default
	// (Config.Cacheable), which covers the cookie too.
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control = %q", got)
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "color"), c); body != "blue" {
		t.Fatalf("read back %q", body)
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "color"), &http.Cookie{Name: "session", Value: c.Value}); body != "" {
		t.Fatal("the cookie was accepted without its __Host- prefix")
	}
}

func TestCookieInsecureAndPersistent(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(true)
	cfg.Cookie.Name = "sid"
	cfg.Cookie.Persist = true
	cfg.Cookie.SameSite = http.SameSiteStrictMode
	cfg.Lifetime = 2 * time.Hour
	m := newManager(t, n, cfg)
	srv := serve(t, testHandler(m), false)

	before := time.Now()
	resp, _ := call(t, srv, "POST", "/put"+q("k", "a", "v", "1"), nil)
	c := sessionCookie(resp, "sid")
	if c == nil {
		t.Fatalf("no sid cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("insecure cookie attributes: %q", resp.Header.Get("Set-Cookie"))
	}
	if c.MaxAge < int(2*time.Hour/time.Second)-2 || c.MaxAge > int(2*time.Hour/time.Second)+1 {
		t.Fatalf("Max-Age %d, want about the 2h lifetime", c.MaxAge)
	}
	if d := c.Expires.Sub(before.Add(2 * time.Hour)); d < -2*time.Second || d > 2*time.Second {
		t.Fatalf("Expires %v, want about %v", c.Expires, before.Add(2*time.Hour))
	}
}

func TestRememberMe(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.RememberMe(r.Context(), r.URL.Query().Get("remember") == "1")
		if got := m.Keys(r.Context()); len(got) != 0 {
			t.Errorf("RememberMe's key is visible: %q", got)
		}
	}))
	srv := serve(t, h, false)
	resp, _ := call(t, srv, "POST", "/?remember=1", nil)
	c := sessionCookie(resp, "session")
	if c == nil || c.MaxAge <= 0 {
		t.Fatalf("RememberMe(true) did not make a persistent cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	resp, _ = call(t, srv, "POST", "/?remember=0", c)
	c2 := sessionCookie(resp, "session")
	if c2 == nil || c2.Value != c.Value || c2.MaxAge != 0 {
		t.Fatalf("RememberMe(false) should resend the same token as a session cookie: %q", resp.Header.Values("Set-Cookie"))
	}
}

func TestReadOnlyVisitorGetsNoCookie(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(false))
	srv := serve(t, testHandler(m), true)

	resp, body := call(t, srv, "GET", "/get"+q("k", "user"), nil)
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("a read-only visitor was given a cookie: %q", got)
	}
	if !hasToken(resp.Header, "Vary", "Cookie") {
		t.Fatalf("no Vary: Cookie on a response that read the session: %q", resp.Header.Values("Vary"))
	}

	// A returning visitor who only reads is not sent the cookie again.
	resp, _ = call(t, srv, "POST", "/put"+q("k", "user", "v", "ann"), nil)
	c := sessionCookie(resp, "__Host-session")
	resp, body = call(t, srv, "GET", "/get"+q("k", "user"), c)
	if body != "ann" || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("read %q with Set-Cookie %q", body, resp.Header.Values("Set-Cookie"))
	}
}

func TestForgedTokenIsReplacedNotAdopted(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(false))
	srv := serve(t, testHandler(m), true)
	ctx := context.Background()

	// A well-formed token the attacker made up, a malformed one, and the
	// token of a session that was destroyed.
	dead, err := n.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Destroy(ctx, dead); err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not-a-token", dead} {
		planted := &http.Cookie{Name: "__Host-session", Value: forged}
		if _, body := call(t, srv, "GET", "/get"+q("k", "user"), planted); body != "" {
			t.Fatalf("forged token %q read %q", forged, body)
		}
		resp, _ := call(t, srv, "POST", "/login"+q("user", "victim"), planted)
		c := sessionCookie(resp, "__Host-session")
		if c == nil || c.Value == forged {
			t.Fatalf("token %q was adopted (Set-Cookie %q)", forged, resp.Header.Values("Set-Cookie"))
		}
		if _, err := n.Get(ctx, forged); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("a session exists under the planted token %q: %v", forged, err)
		}
		if _, body := call(t, srv, "GET", "/get"+q("k", "user"), c); body != "victim" {
			t.Fatalf("new session reads %q", body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := sessionhttp.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for name, tweak := range map[string]func(*sessionhttp.Config){
		"zero idle":           func(c *sessionhttp.Config) { c.IdleTimeout = 0 },
		"idle over lifetime":  func(c *sessionhttp.Config) { c.IdleTimeout = 2 * c.Lifetime },
		"empty cookie name":   func(c *sessionhttp.Config) { c.Cookie.Name = "" },
		"cookie name space":   func(c *sessionhttp.Config) { c.Cookie.Name = "my session" },
		"prefixed name":       func(c *sessionhttp.Config) { c.Cookie.Name = "__Host-sid" },
		"none over http":      func(c *sessionhttp.Config) { c.Cookie.SameSite = http.SameSiteNoneMode; c.Cookie.Insecure = true },
		"header only no name": func(c *sessionhttp.Config) { c.Header.Only = true },
		"bad response header": func(c *sessionhttp.Config) { c.Header.Name = "X-Token"; c.Header.Response = "a b" },
		"nil codec":           func(c *sessionhttp.Config) { c.Codec = nil },
		"nil logger":          func(c *sessionhttp.Config) { c.Logger = nil },
		"clear-site-data crlf": func(c *sessionhttp.Config) {
			c.ClearSiteData = "\"cookies\"\r\nX: y"
		},
	} {
		cfg := sessionhttp.DefaultConfig()
		tweak(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	if _, err := sessionhttp.New(nil, sessionhttp.DefaultConfig()); err == nil {
		t.Error("New accepted a nil node")
	}
}

func TestNoSessionInContext(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	ctx := context.Background()
	if err := m.Put(ctx, "k", "v"); !errors.Is(err, sessionhttp.ErrNoSession) {
		t.Fatalf("Put outside LoadAndSave: %v", err)
	}
	if err := m.Destroy(ctx); !errors.Is(err, sessionhttp.ErrNoSession) {
		t.Fatalf("Destroy outside LoadAndSave: %v", err)
	}
	if m.Get(ctx, "k") != nil || m.Exists(ctx, "k") || len(m.Keys(ctx)) != 0 {
		t.Fatal("reads outside LoadAndSave returned something")
	}
	// Another Manager's context is not this one's.
	other := newManager(t, n, testConfig(true))
	errc := make(chan error, 1)
	h := other.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc <- m.Put(r.Context(), "k", "v")
	}))
	srv := serve(t, h, false)
	resp, _ := call(t, srv, "GET", "/", nil)
	if err := <-errc; !errors.Is(err, sessionhttp.ErrNoSession) || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("Put through another Manager's context: %v, Set-Cookie %q", err, resp.Header.Values("Set-Cookie"))
	}
}

func TestValuesAPI(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	when := time.Date(2024, 5, 6, 7, 8, 9, 10, time.FixedZone("x", 3600))
	var (
		mu   sync.Mutex
		fail []string
	)
	check := func(ok bool, what string) {
		if !ok {
			mu.Lock()
			fail = append(fail, what)
			mu.Unlock()
		}
	}
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/write":
			for k, v := range map[string]any{"s": "str", "b": true, "i": 42, "i64": int64(-1 << 40), "i32": int32(-7),
				"f": 2.5, "bytes": []byte{0, 1, 2}, "t": when, "flash": "once", "gone": "x"} {
				check(m.Put(ctx, k, v) == nil, "put "+k)
			}
			m.Remove(ctx, "gone")
			check(!m.Exists(ctx, "gone"), "Remove")
			check(errors.Is(m.Put(ctx, "", 1), sessionhttp.ErrInvalidKey), "empty key refused")
			check(errors.Is(m.Put(ctx, "\x00x", 1), sessionhttp.ErrInvalidKey), "reserved key refused")
			check(m.Token(ctx) == "", "no token before the commit")
		case "/read":
			check(m.GetString(ctx, "s") == "str", "GetString")
			check(m.GetBool(ctx, "b"), "GetBool")
			check(m.GetInt(ctx, "i") == 42, "GetInt")
			check(m.GetInt64(ctx, "i64") == -1<<40, "GetInt64")
			check(m.GetInt32(ctx, "i32") == -7, "GetInt32")
			check(m.GetFloat(ctx, "f") == 2.5, "GetFloat")
			check(string(m.GetBytes(ctx, "bytes")) == "\x00\x01\x02", "GetBytes")
			check(m.GetTime(ctx, "t").Equal(when), "GetTime")
			check(m.GetInt(ctx, "s") == 0, "GetInt of a string is 0")
			check(strings.Join(m.Keys(ctx), ",") == "b,bytes,f,flash,i,i32,i64,s,t", "Keys: "+strings.Join(m.Keys(ctx), ","))
			check(m.PopString(ctx, "flash") == "once", "PopString")
			check(!m.Exists(ctx, "flash"), "Pop removes")
			check(m.Token(ctx) != "", "Token")
			check(time.Until(m.Deadline(ctx)) > 11*time.Hour, "Deadline")
		case "/flash":
			check(m.PopString(ctx, "flash") == "", "popped flash is gone for the next request")
			check(m.Clear(ctx) == nil, "Clear")
			check(len(m.Keys(ctx)) == 0, "Clear empties")
		case "/empty":
			check(len(m.Keys(ctx)) == 0 && m.Keys(ctx) != nil, "Keys of a cleared session: empty, not nil")
		}
		io.WriteString(w, "ok")
	}))
	srv := serve(t, h, false)
	resp, _ := call(t, srv, "POST", "/write", nil)
	c := sessionCookie(resp, "session")
	if c == nil {
		t.Fatal("no cookie")
	}
	for _, p := range []string{"/read", "/flash", "/empty"} {
		call(t, srv, "POST", p, c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fail) > 0 {
		t.Fatalf("failed: %q", fail)
	}
}
