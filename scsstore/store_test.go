package scsstore_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/scsstore"
)

// TestSCSAcrossNodes runs scs itself, unchanged but for its Store, on two
// nodes: a session written through one app is read through the other,
// renewal and logout reach both.
func TestSCSAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, nil)
	smA, smB := scs.New(), scs.New()
	smA.Store, smB.Store = scsstore.New(nodes[0]), scsstore.New(nodes[1])
	a, b := scsApp(t, smA, nil), scsApp(t, smB, nil)

	c, _ := call(t, a, "POST", "/put?k=user&v=ann", nil)
	if c == nil {
		t.Fatal("scs set no cookie")
	}
	if _, body := call(t, a, "GET", "/get?k=user", c); body != "ann" {
		t.Fatalf("second request on A: %q", body)
	}
	eventually(t, 10*time.Second, "the session to reach B", func() bool {
		_, body := call(t, b, "GET", "/get?k=user", c)
		return body == "ann"
	})

	// Login on B: a new token, the old one gone on both.
	renewed, _ := call(t, b, "POST", "/login", c)
	if renewed == nil || renewed.Value == c.Value {
		t.Fatal("RenewToken issued no new token")
	}
	if _, body := call(t, b, "GET", "/get?k=user", renewed); body != "ann" {
		t.Fatalf("renewed session on B: %q", body)
	}
	eventually(t, 10*time.Second, "renewal to reach A", func() bool {
		_, old := call(t, a, "GET", "/get?k=user", c)
		_, cur := call(t, a, "GET", "/get?k=user", renewed)
		return old == "" && cur == "ann"
	})

	// Logout on A, refused on B.
	call(t, a, "POST", "/logout", renewed)
	eventually(t, 10*time.Second, "logout to reach B", func() bool {
		_, body := call(t, b, "GET", "/get?k=user", renewed)
		return body == ""
	})
	for _, n := range nodes {
		if _, err := n.Get(context.Background(), renewed.Value); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("destroyed session still visible on %s: %v", n.ID(), err)
		}
	}
}

// TestSCSIdleTimeout: scs's idle timeout, carried in the stored expiry,
// ends the session on every peer's clock; scs's commits renew it.
func TestSCSIdleTimeout(t *testing.T) {
	t.Parallel()
	clock := &meshtest.OffsetClock{}
	n := startNodes(t, 1, func(cfg *node.Config) { cfg.Clock = clock })[0]
	opts := scsstore.DefaultOptions()
	st, err := scsstore.NewWithOptions(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	sm := scs.New()
	sm.Store = st
	sm.IdleTimeout = 10 * time.Minute
	app := scsApp(t, sm, nil)

	c, _ := call(t, app, "POST", "/put?k=user&v=ann", nil)
	clock.Advance(8 * time.Minute)
	if _, body := call(t, app, "GET", "/get?k=user", c); body != "ann" {
		t.Fatalf("within the idle timeout: %q", body)
	}
	clock.Advance(11 * time.Minute)
	if _, body := call(t, app, "GET", "/get?k=user", c); body != "" {
		t.Fatalf("idle session still served: %q", body)
	}
}

// TestStoreContract checks the scs.Store contract directly.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	clock := &meshtest.OffsetClock{}
	n := startNodes(t, 1, func(cfg *node.Config) { cfg.Clock = clock })[0]
	opts := scsstore.DefaultOptions()
	opts.Lifetime = time.Hour
	s, err := scsstore.NewWithOptions(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := "Zm9yZ2VkLXRva2VuLW9mLTMyLWJ5dGVzLWV4YWN0bHk" // 32 bytes, base64url

	for _, bad := range []string{"", "short", tok + "A"} {
		if b, found, err := s.Find(bad); b != nil || found || err != nil {
			t.Fatalf("Find(%q) = %q, %v, %v", bad, b, found, err)
		}
		if err := s.Commit(bad, []byte("x"), clock.Now().Add(time.Hour)); !errors.Is(err, scsstore.ErrToken) {
			t.Fatalf("Commit(%q) = %v, want ErrToken", bad, err)
		}
		if err := s.Delete(bad); err != nil {
			t.Fatalf("Delete(%q) = %v", bad, err)
		}
	}
	if _, found, _ := s.Find(tok); found {
		t.Fatal("found an unknown token")
	}

	if err := s.Commit(tok, []byte("v1"), clock.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := s.FindCtx(ctx, tok); string(b) != "v1" || !found || err != nil {
		t.Fatalf("Find after Commit = %q, %v, %v", b, found, err)
	}
	if err := s.Commit(tok, []byte("v2"), clock.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := s.Find(tok); string(b) != "v2" {
		t.Fatalf("Commit did not overwrite: %q", b)
	}

	// A node session's deadline is fixed at creation: an expiry past it is
	// refused, and the session keeps its data.
	sess, _ := n.Get(ctx, tok)
	if err := s.Commit(tok, []byte("v3"), sess.Deadline().Add(5*time.Hour)); !errors.Is(err, scsstore.ErrRefused) {
		t.Fatalf("commit past the deadline: %v, want ErrRefused", err)
	}
	if b, found, _ := s.Find(tok); string(b) != "v2" || !found {
		t.Fatalf("after a refused commit: %q, %v", b, found)
	}

	// The stored expiry is what Find checks.
	if err := s.Commit(tok, []byte("v4"), clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if _, found, _ := s.Find(tok); found {
		t.Fatal("found after its expiry")
	}

	// Delete is final: a racing commit does not bring the session back.
	if err := s.Commit(tok, []byte("v5"), clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCtx(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(tok); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Commit(tok, []byte("late"), clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("commit after delete: %v", err)
	}
	if _, found, _ := s.Find(tok); found {
		t.Fatal("a commit after Delete revived the session")
	}

	// Oversized blobs are refused with a clear error.
	big := "Yi1ieXRlcy1vZi1hLWJpZy1zZXNzaW9uLWJsb2ItMzI"
	if err := s.Commit(big, make([]byte, 1<<20), clock.Now().Add(time.Minute)); !errors.Is(err, scsstore.ErrRefused) {
		t.Fatalf("a 1 MiB blob: %v, want ErrRefused", err)
	}

	if _, err := s.All(); !errors.Is(err, scsstore.ErrNotIterable) {
		t.Fatalf("All without Iterable: %v", err)
	}
	if _, err := scsstore.NewWithOptions(n, scsstore.Options{}); err == nil {
		t.Fatal("zero Options accepted")
	}
	if _, err := scsstore.NewWithOptions(nil, scsstore.DefaultOptions()); err == nil {
		t.Fatal("nil node accepted")
	}
}

// TestSCSIterate: with Iterable (and scs's HashTokenInStore), scs's Iterate
// sees every live session.
func TestSCSIterate(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	opts := scsstore.DefaultOptions()
	opts.Iterable = true
	st, err := scsstore.NewWithOptions(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	sm := scs.New()
	sm.Store = st
	sm.HashTokenInStore = true
	app := scsApp(t, sm, nil)
	want := map[string]bool{"ann": true, "bob": true, "cy": true}
	var cookies []*http.Cookie
	for u := range want {
		c, _ := call(t, app, "POST", "/put?k=user&v="+u, nil)
		cookies = append(cookies, c)
	}
	call(t, app, "POST", "/logout", cookies[0])
	all, err := st.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("All returned %d sessions, want 2", len(all))
	}
	for tok := range all {
		for _, c := range cookies {
			if tok == c.Value {
				t.Fatal("with HashTokenInStore the store must not hold cookie values")
			}
		}
	}
	seen := map[string]bool{}
	err = sm.Iterate(context.Background(), func(ctx context.Context) error {
		seen[sm.GetString(ctx, "user")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[""] {
		t.Fatalf("Iterate saw %v", seen)
	}
}

// TestMergeIsPerSession documents the limit the package doc states: two
// concurrent scs requests on one session, each writing its own key, keep
// only one of the two writes (the later commit's whole blob).
func TestMergeIsPerSession(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	sm := scs.New()
	sm.Store = scsstore.New(n)
	var loaded sync.WaitGroup
	release := make(chan struct{})
	srv := scsApp(t, sm, func(mux *http.ServeMux) {
		mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
			loaded.Done()
			<-release
			sm.Put(r.Context(), r.URL.Query().Get("k"), "set")
		})
		mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
			for _, k := range sm.Keys(r.Context()) {
				w.Write([]byte(k + " "))
			}
		})
	})
	c, _ := call(t, srv, "POST", "/put?k=seed&v=1", nil)

	loaded.Add(2)
	var done sync.WaitGroup
	for _, k := range []string{"a", "b"} {
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/slow?k="+k, nil)
			req.AddCookie(c)
			if resp, err := srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	loaded.Wait()
	close(release)
	done.Wait()
	if _, keys := call(t, srv, "GET", "/keys", c); keys != "a seed " && keys != "b seed " {
		t.Fatalf("keys after two concurrent commits: %q, want exactly one of a and b", keys)
	}
}

// TestCreateReplicatesByGossip: the session a commit creates reaches the
// other peer with the commit's own delta, without waiting for
// anti-entropy.
func TestCreateReplicatesByGossip(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, func(cfg *node.Config) { cfg.SyncInterval = time.Hour })
	for _, n := range nodes {
		eventually(t, 15*time.Second, "the gossip mesh", func() bool { return len(meshtest.Transport(n).MeshPeers()) > 0 })
	}
	a, b := scsstore.New(nodes[0]), scsstore.New(nodes[1])
	tok := "Z29zc2lwLW9ubHktdG9rZW4tb2YtMzItYnl0ZXMtISE"
	if err := a.Commit(tok, []byte("blob"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the commit to reach B", func() bool {
		blob, found, err := b.Find(tok)
		return err == nil && found && string(blob) == "blob"
	})
}
