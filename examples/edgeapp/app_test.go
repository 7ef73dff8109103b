package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

// startInstance runs the app on a real node over libp2p on 127.0.0.1,
// joined to the nodes given by bootstrap.
func startInstance(t *testing.T, name string, bootstrap []string) (*p2pnode.Node, *httptest.Server) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	cfg := p2pnode.DefaultConfig()
	cfg.Logger = quiet
	cfg.SyncInterval = 200 * time.Millisecond
	cfg.Transport.Bootstrap = bootstrap
	n, err := p2pnode.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	scfg := sessionhttp.DefaultConfig()
	scfg.Logger = quiet
	scfg.Cookie.Insecure = true // httptest serves plain http
	m, err := sessionhttp.New(n.Node, scfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newApp(m, name))
	t.Cleanup(srv.Close)
	return n, srv
}

func addrs(n *p2pnode.Node) []string {
	var out []string
	for _, a := range n.Transport().Addrs() {
		out = append(out, a.String())
	}
	return out
}

// browser is a client with a cookie jar; both instances listen on
// 127.0.0.1, so it sends them the same cookie, as a browser would.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{Jar: jar}}
}

func (b *browser) do(method, u string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoInstances walks through the README: login and count on A, count
// on B, logout on B, and the old cookie refused on A.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	nA, a := startInstance(t, "A", nil)
	nB, b := startInstance(t, "B", addrs(nA))
	eventually(t, "the instances to connect", func() bool { return len(nB.Peers()) == 1 })

	br := newBrowser(t)
	if _, got := br.do("GET", a.URL+"/", nil); got != "A: user (not logged in), count 0" {
		t.Fatalf("anonymous visit: %q", got)
	}
	if cs := br.client.Jar.Cookies(mustURL(t, a.URL)); len(cs) != 0 {
		t.Fatalf("an anonymous visit set a cookie: %v", cs)
	}
	if code, got := br.do("POST", a.URL+"/login", url.Values{"user": {"ann"}}); code != 200 || got != "A: logged in as ann" {
		t.Fatalf("login: %d %q", code, got)
	}
	if _, got := br.do("POST", a.URL+"/count", nil); got != "A: count 1" {
		t.Fatalf("count on A: %q", got)
	}
	eventually(t, "the session to reach B", func() bool {
		_, got := br.do("GET", b.URL+"/", nil)
		return got == "B: user ann, count 1"
	})
	if _, got := br.do("POST", b.URL+"/count", nil); got != "B: count 2" {
		t.Fatalf("count on B: %q", got)
	}

	stolen := br.client.Jar.Cookies(mustURL(t, a.URL))
	if _, got := br.do("POST", b.URL+"/logout", nil); got != "B: logged out" {
		t.Fatalf("logout: %q", got)
	}
	if cs := br.client.Jar.Cookies(mustURL(t, a.URL)); len(cs) != 0 {
		t.Fatalf("the logout left the cookie in the jar: %v", cs)
	}
	// Someone who kept a copy of the cookie gets nothing on A either.
	thief := newBrowser(t)
	thief.client.Jar.SetCookies(mustURL(t, a.URL), stolen)
	eventually(t, "the logout to reach A", func() bool {
		_, got := thief.do("GET", a.URL+"/", nil)
		return got == "A: user (not logged in), count 0"
	})

	if code, _ := br.do("POST", a.URL+"/login", url.Values{"user": {""}}); code != http.StatusBadRequest {
		t.Fatalf("empty user: %d", code)
	}
}

// TestCrossSiteRequestsRefused: a cross-site form post cannot count on
// the visitor's behalf.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	_, a := startInstance(t, "A", nil)
	br := newBrowser(t)
	br.do("POST", a.URL+"/count", nil)
	req, _ := http.NewRequest("POST", a.URL+"/count", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := br.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", resp.StatusCode)
	}
	if _, got := br.do("GET", a.URL+"/", nil); got != "A: user (not logged in), count 1" {
		t.Fatalf("after the cross-site attempt: %q", got)
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	if err := run([]string{"-nope"}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
	if err := run([]string{"stray"}); err == nil {
		t.Fatal("a stray argument was accepted")
	}
	var l listFlag
	l.Set("/ip4/1.2.3.4/tcp/1/p2p/x, /ip4/5.6.7.8/tcp/2/p2p/y")
	l.Set("/ip4/9.9.9.9/tcp/3/p2p/z")
	if len(l) != 3 || l[1] != "/ip4/5.6.7.8/tcp/2/p2p/y" {
		t.Fatalf("bootstrap list %q", l)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
