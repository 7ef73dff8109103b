package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

const testBearer = "test-bearer-token-0123456789"

func newAPI(t *testing.T, o APIOptions) (http.Handler, APIOptions) {
	t.Helper()
	if o.Node == nil {
		o.Node = openNode(t)
	}
	return NewHandler(o), o
}

func auth(h map[string]string) map[string]string {
	out := map[string]string{"Authorization": "Bearer " + testBearer}
	maps.Copy(out, h)
	return out
}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	h, _ := newAPI(t, APIOptions{})

	r := do(t, h, request{method: "POST", path: "/v1/sessions",
		body: `{"fields": {"user": "alice", "cart": "3"}, "idle_timeout_seconds": 600, "lifetime_seconds": 3600}`})
	if r.status != http.StatusCreated || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %q %v", r.status, r.body, r.header)
	}
	created := decode[tokenResponse](t, r)
	if len(created.Token) != 43 || created.ID == "" {
		t.Fatalf("create: %+v", created)
	}
	tok := map[string]string{TokenHeader: created.Token}

	r = do(t, h, request{method: "GET", path: "/v1/session", headers: tok})
	s := decode[sessionResponse](t, r)
	if r.status != 200 || s.ID != created.ID || s.Encoding != "utf8" || s.IdleTimeoutSeconds != 600 ||
		!maps.Equal(s.Fields, map[string]string{"user": "alice", "cart": "3"}) {
		t.Fatalf("read: %d %q", r.status, r.body)
	}
	if d := time.Time(s.Deadline).Sub(time.Time(s.Created)); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("deadline %v after creation, want 1h", d)
	}
	if !msTime.Match(r.body) {
		t.Errorf("times are not RFC 3339 with milliseconds: %s", r.body)
	}
	if r := do(t, h, request{method: "HEAD", path: "/v1/session", headers: tok}); r.status != 200 {
		t.Errorf("HEAD: %d", r.status)
	}

	r = do(t, h, request{method: "PATCH", path: "/v1/session", headers: tok,
		body: `{"set": {"cart": "4", "theme": "dark"}, "remove": ["user"]}`})
	if r.status != http.StatusNoContent {
		t.Fatalf("update: %d %q", r.status, r.body)
	}
	s = decode[sessionResponse](t, do(t, h, request{method: "GET", path: "/v1/session", headers: tok}))
	if !maps.Equal(s.Fields, map[string]string{"cart": "4", "theme": "dark"}) {
		t.Fatalf("after update: %v", s.Fields)
	}

	// Binary values travel as base64; reading them as text is refused.
	bin := []byte{0xff, 0x00, 0xfe}
	r = do(t, h, request{method: "PATCH", path: "/v1/session?encoding=base64", headers: tok,
		body: `{"set": {"blob": "` + base64.StdEncoding.EncodeToString(bin) + `"}}`})
	if r.status != http.StatusNoContent {
		t.Fatalf("update base64: %d %q", r.status, r.body)
	}
	r = do(t, h, request{method: "GET", path: "/v1/session", headers: tok})
	if r.status != http.StatusNotAcceptable || r.errorCode(t) != codeNotUTF8 {
		t.Fatalf("utf8 read of a binary value: %d %q", r.status, r.body)
	}
	s = decode[sessionResponse](t, do(t, h, request{method: "GET", path: "/v1/session?encoding=base64", headers: tok}))
	if s.Encoding != "base64" || s.Fields["blob"] != "/wD+" || s.Fields["cart"] != base64.StdEncoding.EncodeToString([]byte("4")) {
		t.Fatalf("base64 read: %+v", s)
	}

	if r := do(t, h, request{method: "POST", path: "/v1/session/touch", headers: tok}); r.status != http.StatusNoContent {
		t.Fatalf("touch: %d %q", r.status, r.body)
	}

	r = do(t, h, request{method: "POST", path: "/v1/session/renew", headers: tok})
	renewed := decode[tokenResponse](t, r)
	if r.status != 200 || renewed.Token == created.Token || renewed.ID == created.ID {
		t.Fatalf("renew: %d %q", r.status, r.body)
	}
	if r := do(t, h, request{method: "GET", path: "/v1/session", headers: tok}); r.status != 404 {
		t.Errorf("old token after renew: %d, want 404", r.status)
	}
	tok = map[string]string{TokenHeader: renewed.Token}
	s = decode[sessionResponse](t, do(t, h, request{method: "GET", path: "/v1/session?encoding=base64", headers: tok}))
	if len(s.Fields) != 3 {
		t.Errorf("fields after renew: %v", s.Fields)
	}

	if r := do(t, h, request{method: "DELETE", path: "/v1/session", headers: tok}); r.status != http.StatusNoContent {
		t.Fatalf("destroy: %d %q", r.status, r.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := do(t, h, request{method: m, path: "/v1/session", headers: tok}); r.status != 404 || r.errorCode(t) != codeSessionNotFound {
			t.Errorf("%s after destroy: %d %q", m, r.status, r.body)
		}
	}

	// A create without a body takes the node's defaults.
	r = do(t, h, request{method: "POST", path: "/v1/sessions"})
	if r.status != http.StatusCreated {
		t.Fatalf("create without body: %d %q", r.status, r.body)
	}
	s = decode[sessionResponse](t, do(t, h, request{method: "GET", path: "/v1/session",
		headers: map[string]string{TokenHeader: decode[tokenResponse](t, r).Token}}))
	if s.IdleTimeoutSeconds != 1800 || len(s.Fields) != 0 {
		t.Errorf("defaults: %+v", s)
	}
}

// Bad requests are answered with a 4xx JSON error and change nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const maxBody = 4 << 10
	h, o := newAPI(t, APIOptions{BearerToken: testBearer, MaxBodyBytes: maxBody})

	r := do(t, h, request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {"user": "alice"}}`})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %q", r.status, r.body)
	}
	good := decode[tokenResponse](t, r).Token
	var raw [32]byte
	rand.Read(raw[:])
	unknown := base64.RawURLEncoding.EncodeToString(raw[:]) // well formed, never issued
	withTok := func(tok string, h map[string]string) map[string]string {
		out := auth(h)
		out[TokenHeader] = tok
		return out
	}
	big := strings.Repeat("x", maxBody)
	hugeValue := strings.Repeat("v", 65<<10) // over crdt's 64 KiB value bound

	root := o.Node.Store().Digests().Root
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
	}{
		// Malformed and unexpected JSON.
		{"malformed create", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {`}, 400, codeMalformedJSON},
		{"malformed update", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "b"`}, 400, codeMalformedJSON},
		{"not json", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `set=a`}, 400, codeMalformedJSON},
		{"empty json body", request{method: "PATCH", path: "/v1/session", headers: withTok(good, map[string]string{"Content-Type": "application/json"})}, 400, codeMalformedJSON},
		{"unknown field create", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"feilds": {"a": "b"}}`}, 400, codeUnknownField},
		{"unknown field update", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "b"}, "delete": ["user"]}`}, 400, codeUnknownField},
		{"trailing object", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "b"}} {}`}, 400, codeTrailingData},
		{"trailing garbage", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{}x`}, 400, codeTrailingData},
		{"number value", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {"a": 1}}`}, 400, codeInvalidType},
		{"array body", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `["a"]`}, 400, codeInvalidType},
		{"null body", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `null`}, 400, codeMalformedJSON},
		{"null create body", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: ` null `}, 400, codeMalformedJSON},
		{"duplicate key", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {"a": "1"}, "fields": {"b": "2"}}`}, 400, codeMalformedJSON},
		{"duplicate field", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "1", "a": "2"}}`}, 400, codeMalformedJSON},
		{"duplicate by escape", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "1", "\u0061": "2"}}`}, 400, codeMalformedJSON},
		{"lone surrogate key", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"\ud800x": "1"}}`}, 400, codeMalformedJSON},
		{"lone low surrogate value", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"k": "\udc00"}}`}, 400, codeMalformedJSON},
		{"reserved key", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"\u0000persist": "1"}}`}, 400, codeInvalidArgument},
		{"reserved key removed", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"remove": ["\u0000persist"]}`}, 400, codeInvalidArgument},
		{"reserved key created", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {"\u0000x": "1"}}`}, 400, codeInvalidArgument},
		{"dot segments", request{method: "GET", path: "/v1/sessions/../session", headers: withTok(good, nil)}, 404, codeNotFound},
		{"double slash", request{method: "GET", path: "//v1/session", headers: withTok(good, nil)}, 404, codeNotFound},
		{"fractional seconds", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"lifetime_seconds": 1.5}`}, 400, codeInvalidType},
		{"invalid utf8", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: "{\"set\": {\"a\": \"\xff\"}}"}, 400, codeMalformedJSON},
		{"bad base64", request{method: "PATCH", path: "/v1/session?encoding=base64", headers: withTok(good, nil), body: `{"set": {"a": "not base64!"}}`}, 400, codeInvalidEncoding},
		{"bad encoding", request{method: "GET", path: "/v1/session?encoding=hex", headers: withTok(good, nil)}, 400, codeInvalidEncoding},
		{"unknown parameter", request{method: "POST", path: "/v1/session/touch?token=" + good, headers: withTok(good, nil)}, 400, codeUnknownParameter},

		// Arguments the node refuses.
		{"empty update", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{}`}, 400, codeInvalidArgument},
		{"set and remove", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "b"}, "remove": ["a"]}`}, 400, codeInvalidArgument},
		{"empty key", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"": "b"}}`}, 400, codeInvalidArgument},
		{"empty key removed", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"remove": [""]}`}, 400, codeInvalidArgument},
		{"zero lifetime", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"lifetime_seconds": 0}`}, 400, codeInvalidArgument},
		{"negative idle", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"idle_timeout_seconds": -5}`}, 400, codeInvalidArgument},
		{"huge lifetime", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"lifetime_seconds": 9223372036854775807}`}, 400, codeInvalidArgument},
		{"body on touch", request{method: "POST", path: "/v1/session/touch", headers: withTok(good, nil), body: `{}`}, 400, codeUnexpectedBody},

		// Sizes.
		{"oversized create", request{method: "POST", path: "/v1/sessions", headers: auth(nil), body: `{"fields": {"a": "` + big + `"}}`}, 413, codeBodyTooLarge},
		{"oversized chunked", request{method: "PATCH", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "` + big + `"}}`, chunked: true}, 413, codeBodyTooLarge},

		// Tokens.
		{"missing token", request{method: "GET", path: "/v1/session", headers: auth(nil)}, 400, codeMissingToken},
		{"unknown token read", request{method: "GET", path: "/v1/session", headers: withTok(unknown, nil)}, 404, codeSessionNotFound},
		{"unknown token update", request{method: "PATCH", path: "/v1/session", headers: withTok(unknown, nil), body: `{"set": {"a": "b"}}`}, 404, codeSessionNotFound},
		{"unknown token touch", request{method: "POST", path: "/v1/session/touch", headers: withTok(unknown, nil)}, 404, codeSessionNotFound},
		{"unknown token renew", request{method: "POST", path: "/v1/session/renew", headers: withTok(unknown, nil)}, 404, codeSessionNotFound},
		{"unknown token destroy", request{method: "DELETE", path: "/v1/session", headers: withTok(unknown, nil)}, 404, codeSessionNotFound},
		{"forged token", request{method: "DELETE", path: "/v1/session", headers: withTok("../../etc/passwd", nil)}, 404, codeSessionNotFound},
		{"session id as token", request{method: "DELETE", path: "/v1/session", headers: withTok(mustID(t, good), nil)}, 404, codeSessionNotFound},
		{"token one char off", request{method: "DELETE", path: "/v1/session", headers: withTok(flip(good), nil)}, 404, codeSessionNotFound},

		// The API bearer token.
		{"no bearer", request{method: "DELETE", path: "/v1/session", headers: map[string]string{TokenHeader: good}}, 401, codeUnauthorized},
		{"wrong bearer", request{method: "DELETE", path: "/v1/session", headers: withTok(good, map[string]string{"Authorization": "Bearer " + testBearer + "x"})}, 401, codeUnauthorized},
		{"basic auth", request{method: "DELETE", path: "/v1/session", headers: withTok(good, map[string]string{"Authorization": "Basic " + testBearer})}, 401, codeUnauthorized},
		{"bearer on create", request{method: "POST", path: "/v1/sessions", headers: map[string]string{"Authorization": "Bearer nope"}, body: `{}`}, 401, codeUnauthorized},
		{"no bearer metrics", request{method: "GET", path: "/metrics"}, 401, codeUnauthorized},
		{"no bearer peers", request{method: "GET", path: "/v1/peers"}, 401, codeUnauthorized},

		// Methods, media types, paths.
		{"put session", request{method: "PUT", path: "/v1/session", headers: withTok(good, nil), body: `{"set": {"a": "b"}}`}, 405, codeMethodNotAllowed},
		{"get sessions", request{method: "GET", path: "/v1/sessions", headers: auth(nil)}, 405, codeMethodNotAllowed},
		{"get touch", request{method: "GET", path: "/v1/session/touch", headers: withTok(good, nil)}, 405, codeMethodNotAllowed},
		{"delete peers", request{method: "DELETE", path: "/v1/peers", headers: auth(nil)}, 405, codeMethodNotAllowed},
		{"post healthz", request{method: "POST", path: "/healthz"}, 405, codeMethodNotAllowed},
		{"text body", request{method: "PATCH", path: "/v1/session", headers: withTok(good, map[string]string{"Content-Type": "text/plain"}), body: `{"set": {"a": "b"}}`}, 415, codeUnsupportedMedia},
		{"form body", request{method: "POST", path: "/v1/sessions", headers: auth(map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), body: `fields=a`}, 415, codeUnsupportedMedia},
		{"no content type", request{method: "POST", path: "/v1/sessions", headers: auth(map[string]string{"Content-Type": ""}), body: `{}`}, 415, codeUnsupportedMedia},
		{"unknown path", request{method: "GET", path: "/v1/session/" + good, headers: auth(nil)}, 404, codeNotFound},
		{"token in path", request{method: "GET", path: "/v1/sessions/" + good, headers: auth(nil)}, 404, codeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, tc.req)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if code := r.errorCode(t); code != tc.code {
				t.Errorf("code %q, want %q: %s", code, tc.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			switch tc.status {
			case 401:
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 405:
				if r.header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}
			if got := o.Node.Store().Digests().Root; got != root {
				t.Errorf("store changed: root %x, was %x", got, root)
			}
		})
	}

	// Over crdt's value bound but under the body limit: refused by the
	// node, nothing stored.
	h2, o2 := newAPI(t, APIOptions{})
	r = do(t, h2, request{method: "POST", path: "/v1/sessions", body: `{"fields": {"a": "` + hugeValue + `"}}`})
	if r.status != 413 || r.errorCode(t) != codeTooLarge {
		t.Errorf("huge value: %d %s", r.status, r.body)
	}
	r = do(t, h2, request{method: "POST", path: "/v1/sessions", body: `{"fields": {"` + strings.Repeat("k", 300) + `": "v"}}`})
	if r.status != 413 || r.errorCode(t) != codeTooLarge {
		t.Errorf("long key: %d %s", r.status, r.body)
	}
	var many strings.Builder
	for i := range 257 {
		if i > 0 {
			many.WriteString(", ")
		}
		fmt.Fprintf(&many, `"k%d": "v"`, i)
	}
	r = do(t, h2, request{method: "POST", path: "/v1/sessions", body: `{"fields": {` + many.String() + `}}`})
	if r.status != 409 || r.errorCode(t) != codeTooManyFields {
		t.Errorf("257 fields: %d %s", r.status, r.body)
	}
	if got := o2.Node.Store().Digests().Root; got != 0 {
		t.Errorf("store changed by a refused create: root %x", got)
	}

	// The session is untouched, and the right bearer token gets through.
	r = do(t, h, request{method: "GET", path: "/v1/session", headers: withTok(good, nil)})
	if s := decode[sessionResponse](t, r); r.status != 200 || !maps.Equal(s.Fields, map[string]string{"user": "alice"}) {
		t.Fatalf("session after bad requests: %d %s", r.status, r.body)
	}
}

// msTime matches a time written as RFC 3339 in UTC with milliseconds.
var msTime = regexp.MustCompile(`"created":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

func mustID(t *testing.T, tok string) string {
	t.Helper()
	id, ok := nodeSessionID(tok)
	if !ok {
		t.Fatal("bad token")
	}
	return id
}

// flip changes the first character of a token.
func flip(tok string) string {
	c := byte('A')
	if tok[0] == 'A' {
		c = 'B'
	}
	return string(c) + tok[1:]
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var notReady error = errors.New("no peer connected yet")
	h, _ := newAPI(t, APIOptions{BearerToken: testBearer, Ready: func() error { return notReady }})
	if r := do(t, h, request{method: "GET", path: "/healthz"}); r.status != 200 {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	r := do(t, h, request{method: "GET", path: "/readyz"})
	if r.status != 503 || r.errorCode(t) != codeNotReady || !strings.Contains(string(r.body), "no peer") {
		t.Errorf("readyz not ready: %d %s", r.status, r.body)
	}
	notReady = nil
	if r := do(t, h, request{method: "GET", path: "/readyz"}); r.status != 200 {
		t.Errorf("readyz ready: %d %s", r.status, r.body)
	}
	r = do(t, h, request{method: "GET", path: "/v1/peers", headers: auth(nil)})
	p := decode[peersResponse](t, r)
	if r.status != 200 || p.Self.ID == "" || p.Peers == nil {
		t.Errorf("peers: %d %s", r.status, r.body)
	}
	// No gatherer: no metrics, even with the right token.
	if r := do(t, h, request{method: "GET", path: "/metrics", headers: auth(nil)}); r.status != 404 {
		t.Errorf("metrics without gatherer: %d", r.status)
	}
}

// A read that no holder answered (partial replication) is a retryable 503,
// not a 500 logged as a failure: 108 of 200 reads answered 500 "internal"
// with three of four peers down.
func TestHolderUnavailableIsRetryable(t *testing.T) {
	var logged bytes.Buffer
	a := &api{o: APIOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))}}
	rec := httptest.NewRecorder()
	a.nodeError(rec, httptest.NewRequest("GET", "/v1/session", nil), fmt.Errorf("read: %w", node.ErrUnavailable))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), `"holder_unavailable"`) {
		t.Fatalf("got %d, Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
	if logged.Len() != 0 {
		t.Errorf("logged as a failure: %s", logged.String())
	}
}
