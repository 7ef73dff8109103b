package scsstore_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
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
