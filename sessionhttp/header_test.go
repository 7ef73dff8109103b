package sessionhttp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sessionmesh/sessionmesh/node"
)

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(false)
	cfg.Header.Name = "Authorization"
	cfg.Header.Only = true
	srv := serve(t, testHandler(newManager(t, n, cfg)), true)

	// A client without a token logs in and gets one in the header.
	resp, _ := call(t, srv, "POST", "/login"+q("user", "api"), nil)
	token := resp.Header.Get("Session-Token")
	if _, ok := node.SessionID(token); !ok {
		t.Fatalf("no token in Session-Token: %q", token)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("a header client got a cookie: %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("a response carrying a token must not be stored: Cache-Control %q", got)
	}
	if !hasToken(resp.Header, "Vary", "Authorization") || hasToken(resp.Header, "Vary", "Cookie") {
		t.Fatalf("Vary = %q", resp.Header.Values("Vary"))
	}

	resp, body := call(t, srv, "GET", "/get"+q("k", "user"), nil, "Authorization", "bearer "+token)
	if body != "api" || resp.Header.Get("Session-Token") != "" {
		t.Fatalf("bearer read: %q, token header %q", body, resp.Header.Get("Session-Token"))
	}

	// Cookies are ignored on a header-only manager.
	if _, body := call(t, srv, "GET", "/get"+q("k", "user"), nil, "Cookie", "__Host-session="+token); body != "" {
		t.Fatalf("header-only manager read a cookie: %q", body)
	}
	// Another scheme is no token.
	if _, body := call(t, srv, "GET", "/get"+q("k", "user"), nil, "Authorization", "Basic "+token); body != "" {
		t.Fatalf("Basic credentials read as a token: %q", body)
	}

	// A forged bearer token is replaced, never adopted.
	forged := "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	resp, _ = call(t, srv, "POST", "/put"+q("k", "user", "v", "x"), nil, "Authorization", "Bearer "+forged)
	if got := resp.Header.Get("Session-Token"); got == "" || got == forged {
		t.Fatalf("forged bearer token: response token %q", got)
	}
	if _, err := n.Get(context.Background(), forged); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("session under the forged token: %v", err)
	}

	// Renewal returns the new token; the old one stops working.
	resp, _ = call(t, srv, "POST", "/login"+q("user", "api2"), nil, "Authorization", "Bearer "+token)
	renewed := resp.Header.Get("Session-Token")
	if renewed == "" || renewed == token {
		t.Fatalf("renewal returned %q", renewed)
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "user"), nil, "Authorization", "Bearer "+token); body != "" {
		t.Fatalf("old bearer token still works: %q", body)
	}

	// Logout: no cookie to clear, but nothing cached.
	resp, _ = call(t, srv, "POST", "/logout", nil, "Authorization", "Bearer "+renewed)
	if len(resp.Header.Values("Set-Cookie")) != 0 || resp.Header.Get("Clear-Site-Data") != "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("header client logout headers: %v", resp.Header)
	}
	if _, err := n.Get(context.Background(), renewed); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("logout left the session: %v", err)
	}
}

// TestHeaderAndCookieClients: a manager that takes both serves each client
// the way it came.
func TestHeaderAndCookieClients(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(false)
	cfg.Header.Name = "X-Session"
	cfg.Header.Response = "X-New-Session"
	srv := serve(t, testHandler(newManager(t, n, cfg)), true)

	resp, _ := call(t, srv, "POST", "/put"+q("k", "a", "v", "browser"), nil)
	if sessionCookie(resp, "__Host-session") == nil || resp.Header.Get("X-New-Session") != "" {
		t.Fatalf("a browser must get a cookie and no token header: %v", resp.Header)
	}
	if !hasToken(resp.Header, "Vary", "Cookie") || !hasToken(resp.Header, "Vary", "X-Session") {
		t.Fatalf("Vary = %q", resp.Header.Values("Vary"))
	}

	// A client sending the header (even with a stale token) is a header
	// client.
	resp, _ = call(t, srv, "POST", "/put"+q("k", "a", "v", "app"), nil, "X-Session", "stale")
	token := resp.Header.Get("X-New-Session")
	if token == "" || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("header client: token %q, Set-Cookie %q", token, resp.Header.Values("Set-Cookie"))
	}
	if _, body := call(t, srv, "GET", "/get"+q("k", "a"), nil, "X-Session", token); body != "app" {
		t.Fatalf("header read %q", body)
	}
}
