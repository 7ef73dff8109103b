package sessionhttp_test

import (
	"testing"
)

// A response to a request that carries a live session may show what only
// that user should see: no cache may keep it, not only shared ones.
func TestAuthenticatedResponsesAreNotStored(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(false))
	srv := serve(t, testHandler(m), true)

	resp, _ := call(t, srv, "GET", "/get"+q("k", "user"), nil)
	if hasToken(resp.Header, "Cache-Control", "no-store") {
		t.Fatalf("anonymous read carries no-store: %q", resp.Header.Values("Cache-Control"))
	}
	resp, _ = call(t, srv, "POST", "/put"+q("k", "user", "v", "ann"), nil)
	c := sessionCookie(resp, "__Host-session")
	if c == nil || !hasToken(resp.Header, "Cache-Control", "no-store") {
		t.Fatalf("login response: cookie %v, Cache-Control %q", c, resp.Header.Values("Cache-Control"))
	}
	resp, body := call(t, srv, "GET", "/get"+q("k", "user"), c)
	if body != "ann" {
		t.Fatalf("read %q", body)
	}
	if !hasToken(resp.Header, "Cache-Control", "no-store") {
		t.Fatalf("authenticated read without no-store: %q", resp.Header.Values("Cache-Control"))
	}

	cfg := testConfig(false)
	cfg.Cacheable = true
	cm := newManager(t, n, cfg)
	csrv := serve(t, testHandler(cm), true)
	resp, body = call(t, csrv, "GET", "/get"+q("k", "user"), c)
	if body != "ann" || hasToken(resp.Header, "Cache-Control", "no-store") {
		t.Fatalf("Cacheable: read %q with Cache-Control %q", body, resp.Header.Values("Cache-Control"))
	}
}
