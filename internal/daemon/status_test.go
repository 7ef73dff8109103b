package daemon

import (
	"errors"
	"testing"
	"time"
)

// /v1/status, /v1/peers, DELETE /v1/peers/{id} and /v1/backup of a peer
// without network and with its store in memory.
func TestStatusAlone(t *testing.T) {
	t.Parallel()
	n := openNode(t)
	notReady := errors.New("draining for the test")
	var ready error
	started := time.Now().Add(-time.Minute)
	h := NewHandler(APIOptions{Node: n, Region: "eu-west", Started: started, DataDir: "", Durability: "group",
		Ready: func() error { return ready }})
	for range 2 {
		if r := do(t, h, request{method: "POST", path: "/v1/sessions", body: `{"fields": {"a": "b"}}`}); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}

	r := do(t, h, request{method: "GET", path: "/v1/status"})
	st := decode[statusResponse](t, r)
	if r.status != 200 || st.Self.ID != string(n.ID()) || st.Self.Region != "eu-west" || !st.Ready || st.NotReady != "" ||
		st.Members.Known != 0 || st.Members.Reachable != 0 || len(st.Peers) != 0 || st.Store.Sessions != 2 ||
		st.Store.Durability != "group" || len(st.Store.DigestRoot) != 16 || st.Store.DigestRoot == "0000000000000000" ||
		st.UptimeSeconds < 60 || st.Version == "" {
		t.Errorf("/v1/status: %d %s", r.status, r.body)
	}
	ready = notReady
	r = do(t, h, request{method: "GET", path: "/v1/status"})
	if st := decode[statusResponse](t, r); st.Ready || st.NotReady != notReady.Error() {
		t.Errorf("/v1/status while not ready: %s", r.body)
	}
	if r := do(t, h, request{method: "GET", path: "/readyz"}); r.status != 503 || r.errorCode(t) != codeNotReady {
		t.Errorf("/readyz while not ready: %d %s", r.status, r.body)
	}
	if r := do(t, h, request{method: "GET", path: "/v1/status?x=1"}); r.status != 400 {
		t.Errorf("/v1/status?x=1: %d", r.status)
	}

	r = do(t, h, request{method: "GET", path: "/v1/peers"})
	if p := decode[peersResponse](t, r); r.status != 200 || p.Peers == nil || len(p.Peers) != 0 || p.Self.ID != string(n.ID()) {
		t.Errorf("/v1/peers: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		req    request
		status int
		code   string
	}{
		{request{method: "DELETE", path: "/v1/peers/not-an-id"}, 400, codeInvalidArgument},
		{request{method: "DELETE", path: "/v1/peers/12D3KooWAAeDaF9srFLtC5MT4tTjMoCMGTV9dn5ntFRNBdimWDXK"}, 503, codeUnavailable},
		{request{method: "GET", path: "/v1/peers/12D3KooWAAeDaF9srFLtC5MT4tTjMoCMGTV9dn5ntFRNBdimWDXK"}, 405, codeMethodNotAllowed},
		{request{method: "POST", path: "/v1/status"}, 405, codeMethodNotAllowed},
		// A store in memory has no backup: a proper error, not a 200
		// with a failed trailer.
		{request{method: "GET", path: "/v1/backup"}, 501, codeUnavailable},
		{request{method: "POST", path: "/v1/backup"}, 405, codeMethodNotAllowed},
	} {
		r := do(t, h, tc.req)
		if r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.req.method, tc.req.path, r.status, r.body, tc.status, tc.code)
		}
	}
}
