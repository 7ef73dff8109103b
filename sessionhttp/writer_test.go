package sessionhttp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

// TestStreamingGetsCookie: a server-sent events handler that flushes
// through http.ResponseController gets its cookie with the first flush,
// while it is still running, and what it writes to the session afterwards
// is saved too.
func TestStreamingGetsCookie(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	release := make(chan struct{})
	errc := make(chan error, 3)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc <- m.Put(r.Context(), "stream", "open")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hello\n\n")
		errc <- http.NewResponseController(w).Flush()
		<-release
		errc <- m.Put(r.Context(), "late", "after the header")
		io.WriteString(w, "data: bye\n\n")
	}))
	srv := serve(t, h, false)

	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The handler is blocked: the header and the first event came with the
	// flush.
	c := sessionCookie(resp, "session")
	if c == nil {
		t.Fatalf("no cookie on the streamed response: %v", resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: hello\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(release)
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	io.Copy(io.Discard, resp.Body)
	eventually(t, 5*time.Second, "the late write to be saved", func() bool {
		s, err := n.Get(context.Background(), c.Value)
		v, _ := s.Get("late")
		return err == nil && len(v) > 0
	})
}

// TestHijack upgrades a connection the way WebSocket libraries do: the
// session is committed before the hijack, its cookie is in Header() for the
// handler's own handshake, and nothing else is ever written to the
// connection.
func TestHijack(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Put(r.Context(), "ws", "upgraded"); err != nil {
			t.Error(err)
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\nSet-Cookie: %s\r\n\r\nhello", w.Header().Get("Set-Cookie"))
		brw.Flush()
		// Changes after the hijack are still saved; nothing is written.
		if err := m.Put(r.Context(), "after", "hijack"); err != nil {
			t.Error(err)
		}
	}))
	srv := serve(t, h, false)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok || rest != "hello" {
		t.Fatalf("something besides the handler wrote to the hijacked connection: %q", raw)
	}
	resp := &http.Response{Header: http.Header{}}
	for _, l := range strings.Split(head, "\r\n")[1:] {
		k, v, _ := strings.Cut(l, ": ")
		resp.Header.Add(k, v)
	}
	c := sessionCookie(resp, "session")
	if c == nil {
		t.Fatalf("no cookie in the handler's handshake: %q", head)
	}
	eventually(t, 5*time.Second, "the session to be saved", func() bool {
		s, err := n.Get(context.Background(), c.Value)
		a, _ := s.Get("ws")
		b, _ := s.Get("after")
		return err == nil && len(a) > 0 && len(b) > 0
	})
}

func TestResponseControllerPassThrough(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	errc := make(chan error, 4)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errc <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		errc <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		errc <- rc.EnableFullDuplex()
		m.Put(r.Context(), "k", "v")
		w.WriteHeader(http.StatusEarlyHints) // informational: no commit yet
		m.Put(r.Context(), "k2", "v2")
		// io.Copy takes the ReaderFrom path.
		_, err := io.Copy(w, strings.NewReader("copied"))
		errc <- err
	}))
	srv := serve(t, h, false)
	resp, body := call(t, srv, "GET", "/", nil)
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatalf("ResponseController through the wrapper: %v", err)
		}
	}
	if body != "copied" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	c := sessionCookie(resp, "session")
	if c == nil {
		t.Fatal("no cookie")
	}
	s, err := n.Get(context.Background(), c.Value)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k2"); !ok {
		t.Fatal("a write between 103 Early Hints and the final header was not committed with it")
	}
}

// TestCommitErrorReachesErrorFunc: a commit the node refuses (a session
// over its size limit: values each within the bound on one, which Put
// checks, but over the bound on a session together) goes to ErrorFunc, and
// the handler's own response is dropped rather than appended to the error.
func TestCommitErrorReachesErrorFunc(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(true)
	errc := make(chan error, 1)
	cfg.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		errc <- err
		http.Error(w, "session trouble", http.StatusServiceUnavailable)
	}
	m := newManager(t, n, cfg)
	writeErr := make(chan error, 1)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 10 {
			if err := m.Put(r.Context(), fmt.Sprintf("part%d", i), strings.Repeat("x", 60<<10)); err != nil {
				t.Error(err) // each within bounds: the node refuses the whole at commit
			}
		}
		_, err := io.WriteString(w, "handler body")
		writeErr <- err
	}))
	resp, body := call(t, serve(t, h, false), "GET", "/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "handler body") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if err := <-errc; err == nil {
		t.Fatal("ErrorFunc got a nil error")
	}
	if err := <-writeErr; !errors.Is(err, sessionhttp.ErrAborted) {
		t.Fatalf("the handler's Write returned %v, want ErrAborted", err)
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("a cookie was set for a session that was not saved")
	}
}

func TestDefaultErrorFunc(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	srv := serve(t, testHandler(m), false)
	resp, _ := call(t, srv, "POST", "/put"+q("k", "a", "v", "1"), nil)
	c := sessionCookie(resp, "session")
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, body := call(t, srv, "GET", "/get"+q("k", "a"), c)
	if resp.StatusCode != http.StatusInternalServerError || strings.TrimSpace(body) != "Internal Server Error" {
		t.Fatalf("closed node: %d %q", resp.StatusCode, body)
	}
}

// TestTooLate: once the header is out, calls that need a new token to
// reach the client fail instead of losing the session silently.
func TestTooLate(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	errc := make(chan error, 3)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		errc <- m.Put(r.Context(), "k", "v")
		errc <- m.RenewToken(r.Context())
		errc <- m.Destroy(r.Context())
	}))
	srv := serve(t, h, false)
	resp, _ := call(t, srv, "POST", "/put"+q("k", "a", "v", "1"), nil) // no session yet
	if err := <-errc; !errors.Is(err, sessionhttp.ErrTooLate) {
		t.Fatalf("Put without a session after the header: %v", err)
	}
	if err := <-errc; !errors.Is(err, sessionhttp.ErrTooLate) {
		t.Fatalf("RenewToken after the header: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Destroy after the header: %v", err)
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("a cookie was set")
	}
}
