package sessionhttp_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

// counterHandler increments the session's counter "n" and answers its new
// value; /revoke logs the user out everywhere but here.
func counterHandler(m *sessionhttp.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) {
		n := m.GetInt(r.Context(), "n") + 1
		if err := m.Put(r.Context(), "n", n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := m.SetOwner(r.Context(), r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "welcome")
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RevokeOwner(r.Context(), r.URL.Query().Get("user"), true); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "revoked")
	})
	return m.LoadAndSave(mux)
}

// patientReads lets a read wait up to 10 s for the version its cookie
// names: the default 200 ms answers 503 on a machine loaded enough to
// delay replication that long (CI saw it at load 11), and these tests
// are about no write being lost, which a longer wait does not hide.
func patientReads(_ int, cfg *node.Config) { cfg.ConsistencyWait = 10 * time.Second }

// The alternating counter: a browser (a cookie jar) sends requests
// alternating between the apps of two peers with no delay, as a
// round-robin balancer would; 200 increments, none lost. The version
// cookie does it: the peer a request lands on waits for what the previous
// request wrote before it reads.
func TestAlternatingCounterAcrossPeers(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, patientReads)
	var srvs []string
	for _, n := range nodes {
		srvs = append(srvs, serve(t, counterHandler(newManager(t, n, testConfig(true))), false).URL)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	for i := range 200 {
		resp, err := client.Post(srvs[i%2]+"/inc", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != strconv.Itoa(i+1) {
			t.Fatalf("increment %d on peer %d: %d %q, want %d", i+1, i%2, resp.StatusCode, body, i+1)
		}
	}
}

// "Log out everywhere": sessions of one user on both peers, revoked from
// one of them while keeping the caller's (moved to a new cookie).
func TestRevokeOwnerKeepsCurrent(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, patientReads)
	var srvs []string
	for _, n := range nodes {
		srvs = append(srvs, serve(t, counterHandler(newManager(t, n, testConfig(true))), false).URL)
	}
	var clients []*http.Client
	for i := range 3 {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		clients = append(clients, c)
		if resp, err := c.Post(srvs[i%2]+"/login?user=dana", "", nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("login: %v %v", resp, err)
		}
		if resp, err := c.Post(srvs[i%2]+"/inc", "", nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("inc: %v %v", resp, err)
		}
	}
	eventually(t, 5e9, "the sessions to replicate", func() bool {
		l, _ := nodes[1].OwnerSessions(t.Context(), "dana")
		return len(l) == 3
	})
	if resp, err := clients[0].Post(srvs[1]+"/revoke?user=dana", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	inc := func(c *http.Client, srv string) string {
		resp, err := c.Post(srv+"/inc", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// The caller's session lives on (counter 1 -> 2) on both peers; the
	// others start over with a fresh anonymous session (counter 1).
	if got := inc(clients[0], srvs[0]); got != "2" {
		t.Fatalf("kept session after revoke: counter %s", got)
	}
	eventually(t, 5e9, "the revocation to replicate", func() bool {
		l, _ := nodes[0].OwnerSessions(t.Context(), "dana")
		return len(l) == 1
	})
	for i, c := range clients[1:] {
		if got := inc(c, srvs[i%2]); got != "1" {
			t.Fatalf("revoked session %d still served: counter %s", i+1, got)
		}
	}
}

// A version this peer cannot reach is answered 503 with Retry-After (the
// default ErrorFunc), not with older data; a version cookie that does not
// parse is ignored.
func TestStaleVersionCookie(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	srv := serve(t, counterHandler(newManager(t, n, testConfig(true))), false)
	resp, _ := call(t, srv, "POST", "/inc", nil)
	tok := sessionCookie(resp, "session")
	vc := sessionCookie(resp, "session-version")
	if tok == nil || vc == nil {
		t.Fatalf("cookies %q", resp.Header.Values("Set-Cookie"))
	}
	v, err := node.ParseVersion(vc.Value)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := v.Join(node.Version{{Node: v[0].Node + 1, Time: v[0].Time}})
	req, _ := http.NewRequest("POST", srv.URL+"/inc", nil)
	req.AddCookie(tok)
	req.AddCookie(&http.Cookie{Name: "session-version", Value: elsewhere.String()})
	r, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("unreachable version: %d %v", r.StatusCode, r.Header)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/inc", nil)
	req.AddCookie(tok)
	req.AddCookie(&http.Cookie{Name: "session-version", Value: "garbage"})
	r, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || string(body) != "2" {
		t.Fatalf("malformed version cookie: %d %q, want it ignored", r.StatusCode, body)
	}
}
