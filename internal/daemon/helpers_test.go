package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// loneNet is a Network with no other peer: the API tests need a node, not
// a mesh.
type loneNet struct{}

func (loneNet) Self() node.PeerID                               { return "lone" }
func (loneNet) Broadcast(context.Context, []byte) error         { return nil }
func (loneNet) Send(context.Context, node.PeerID, []byte) error { return errors.New("no peers") }
func (loneNet) Close() error                                    { return nil }

// openNode opens an in-memory node without network, closed at the end of
// the test.
func openNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Dial = func(context.Context, node.Inbound) (node.Network, error) { return loneNet{}, nil }
	n, err := node.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// request describes one HTTP request to the handler.
type request struct {
	method, path string
	body         string
	headers      map[string]string // "Content-Type" defaults to application/json when body is set
	chunked      bool              // send the body without Content-Length
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the code of a JSON error body, failing the test if the
// body is not one.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: body %q is not a JSON error (%v)", r.status, r.body, err)
	}
	return e.Error.Code
}

func do(t *testing.T, h http.Handler, req request) response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
		if req.chunked {
			body = io.MultiReader(body) // hides the length
		}
	}
	r := httptest.NewRequest(req.method, req.path, body)
	if req.chunked {
		r.ContentLength = -1
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.headers {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// decode unmarshals a JSON response body.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("status %d: body %q: %v", r.status, r.body, err)
	}
	return v
}

func nodeSessionID(tok string) (string, bool) { return node.SessionID(tok) }
