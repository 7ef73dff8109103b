package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
)

// waitRecorder keeps the node's consistency_wait_seconds observations:
// the latency session consistency added to calls that found their peer
// behind.
type waitRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (w *waitRecorder) Add(string, float64, ...string) {}

func (w *waitRecorder) Observe(name string, v float64, _ ...string) {
	if name == "consistency_wait_seconds" {
		w.mu.Lock()
		w.waits = append(w.waits, time.Duration(v*float64(time.Second)))
		w.mu.Unlock()
	}
}

func (w *waitRecorder) percentiles() (n int, p50, p99 time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.waits) == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(w.waits))
	return len(s), s[len(s)/2], s[(len(s)*99)/100]
}

// The alternating counter over the HTTP API of two peers (real libp2p on
// loopback): requests alternate between the peers with no delay, each
// sending back the X-Session-Version of the previous answer; 200
// increments, none lost.
func TestHTTPAlternatingCounterWithVersion(t *testing.T) {
	rec := &waitRecorder{}
	nodes := meshtest.Start(t, 2, func(_ int, cfg *node.Config) {
		cfg.Metrics = rec
		// Patient reads: under load (CI at load 11-18) replication can
		// take longer than the default 200 ms, which would answer 409
		// or 503; this test is about no increment being lost.
		cfg.ConsistencyWait = 10 * time.Second
	})
	var urls []string
	for _, n := range nodes {
		srv := httptest.NewServer(NewHandler(APIOptions{Node: n}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, url, tok, version, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set(TokenHeader, tok)
		}
		if version != "" {
			req.Header.Set(VersionHeader, version)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := call("POST", urls[0]+"/v1/sessions", "", "", `{"fields": {"n": "0"}}`)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(VersionHeader) == "" {
		t.Fatalf("create: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	tok := body[strings.Index(body, `"token":"`)+9:]
	tok = tok[:strings.IndexByte(tok, '"')]
	version := resp.Header.Get(VersionHeader)
	var reads []time.Duration
	for i := range 200 {
		url := urls[(i+1)%2]
		start := time.Now()
		resp, body := call("GET", url+"/v1/session", tok, version, "")
		reads = append(reads, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("increment %d: read: %d %s", i, resp.StatusCode, body)
		}
		version = resp.Header.Get(VersionHeader)
		at := strings.Index(body, `"n":"`) + 5
		k, err := strconv.Atoi(body[at : at+strings.IndexByte(body[at:], '"')])
		if err != nil {
			t.Fatalf("read: %s", body)
		}
		resp, body = call("PATCH", url+"/v1/session", tok, version, fmt.Sprintf(`{"set": {"n": "%d"}}`, k+1))
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("increment %d: write: %d %s", i, resp.StatusCode, body)
		}
		version = resp.Header.Get(VersionHeader)
	}
	resp, body = call("GET", urls[0]+"/v1/session", tok, version, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"n":"200"`) {
		t.Fatalf("after 200 alternating increments: %d %s", resp.StatusCode, body)
	}
	// Baseline: the same read where the version already is (the peer
	// that wrote last: the 200th increment went to peer 0), which never
	// waits.
	var base []time.Duration
	for range 100 {
		start := time.Now()
		if resp, body := call("GET", urls[0]+"/v1/session", tok, version, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("baseline read: %d %s", resp.StatusCode, body)
		}
		base = append(base, time.Since(start))
	}
	slices.Sort(base)
	t.Logf("baseline reads without a wait: p50 %v, p99 %v", base[len(base)/2], base[len(base)*99/100])
	n, p50, p99 := rec.percentiles()
	slices.Sort(reads)
	t.Logf("%d of 400 calls found their peer behind; added latency p50 %v, p99 %v; whole reads (HTTP on loopback, wait included) p50 %v, p99 %v",
		n, p50, p99, reads[len(reads)/2], reads[len(reads)*99/100])

	// A malformed version is refused, not ignored.
	if resp, body := call("GET", urls[0]+"/v1/session", tok, "not-a-version", ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed version: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPOwners(t *testing.T) {
	t.Parallel()
	h, _ := newAPI(t, APIOptions{})
	var toks []tokenResponse
	for range 3 {
		r := do(t, h, request{method: "POST", path: "/v1/sessions", body: `{"owner": "user-42", "fields": {"k": "v"}}`})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		toks = append(toks, decode[tokenResponse](t, r))
	}
	r := do(t, h, request{method: "POST", path: "/v1/sessions", body: `{}`})
	later := decode[tokenResponse](t, r)
	if r := do(t, h, request{method: "PUT", path: "/v1/session/owner", headers: map[string]string{TokenHeader: later.Token},
		body: `{"owner": "user-42"}`}); r.status != http.StatusNoContent || r.header.Get(VersionHeader) == "" {
		t.Fatalf("set owner: %d %s %v", r.status, r.body, r.header)
	}
	list := func() []ownedSession {
		t.Helper()
		r := do(t, h, request{method: "GET", path: "/v1/owners/user-42/sessions"})
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		return decode[ownerSessionsResponse](t, r).Sessions
	}
	if l := list(); len(l) != 4 || l[0].ID != toks[0].ID || l[0].Peer != "lone" {
		t.Fatalf("list: %+v", l)
	}
	if r := do(t, h, request{method: "DELETE", path: "/v1/owners/user-42/sessions/" + toks[1].ID}); r.status != http.StatusNoContent {
		t.Fatalf("destroy one: %d %s", r.status, r.body)
	}
	if r := do(t, h, request{method: "DELETE", path: "/v1/owners/someone-else/sessions/" + toks[2].ID}); r.status != http.StatusNotFound {
		t.Fatalf("destroy another owner's session: %d %s", r.status, r.body)
	}
	if l := list(); len(l) != 3 {
		t.Fatalf("after destroying one: %+v", l)
	}
	// Revoke all, keeping the caller's: it lives on under a new token.
	r = do(t, h, request{method: "DELETE", path: "/v1/owners/user-42/sessions", headers: map[string]string{TokenHeader: toks[0].Token}})
	if r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	kept := decode[revokeResponse](t, r).Kept
	if kept == nil || kept.Token == "" || kept.Token == toks[0].Token {
		t.Fatalf("revoke kept %+v", kept)
	}
	for _, tk := range append(toks, later) {
		if r := do(t, h, request{method: "GET", path: "/v1/session", headers: map[string]string{TokenHeader: tk.Token}}); r.status != http.StatusNotFound {
			t.Fatalf("revoked session read: %d %s", r.status, r.body)
		}
	}
	r = do(t, h, request{method: "GET", path: "/v1/session", headers: map[string]string{TokenHeader: kept.Token}})
	if r.status != 200 || !strings.Contains(string(r.body), `"k":"v"`) {
		t.Fatalf("kept session: %d %s", r.status, r.body)
	}
	if l := list(); len(l) != 1 || l[0].ID != kept.ID {
		t.Fatalf("after revoke: %+v", l)
	}
	if r := do(t, h, request{method: "DELETE", path: "/v1/owners/user-42/sessions"}); r.status != http.StatusNoContent {
		t.Fatalf("revoke all: %d %s", r.status, r.body)
	}
	if l := list(); len(l) != 0 {
		t.Fatalf("after revoking all: %+v", l)
	}
	if r := do(t, h, request{method: "POST", path: "/v1/sessions", body: `{"owner": ""}`}); r.status != http.StatusBadRequest {
		t.Fatalf("empty owner: %d", r.status)
	}
}

// A version this peer cannot reach (written by a peer it never hears
// from) is answered 503 stale_session after the bound, not with older
// data.
func TestHTTPStaleVersion(t *testing.T) {
	t.Parallel()
	h, _ := newAPI(t, APIOptions{})
	r := do(t, h, request{method: "POST", path: "/v1/sessions", body: `{}`})
	tok := decode[tokenResponse](t, r)
	v, err := node.ParseVersion(r.header.Get(VersionHeader))
	if err != nil || len(v) != 1 {
		t.Fatalf("version of a create: %q %v", r.header.Get(VersionHeader), err)
	}
	elsewhere := append(v, node.Version{{Node: v[0].Node + 1, Time: v[0].Time}}...)
	start := time.Now()
	r = do(t, h, request{method: "GET", path: "/v1/session", headers: map[string]string{TokenHeader: tok.Token, VersionHeader: elsewhere.String()}})
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != codeStaleSession || r.header.Get("Retry-After") == "" {
		t.Fatalf("stale version: %d %s", r.status, r.body)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v, before the 200 ms bound", d)
	}
	r = do(t, h, request{method: "GET", path: "/v1/session", headers: map[string]string{TokenHeader: tok.Token, VersionHeader: v.String()}})
	if r.status != 200 || r.header.Get(VersionHeader) != v.String() {
		t.Fatalf("own version: %d %s %v", r.status, r.body, r.header)
	}
}
