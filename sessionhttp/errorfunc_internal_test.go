package sessionhttp

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessionmesh/sessionmesh/node"
)

// The default ErrorFunc answers what a retry may fix with 503 and
// Retry-After: a version this peer could not reach in time, and (partial
// replication) a session none of whose holders answered, which answered
// 500 before.
func TestDefaultErrorFuncRetryable(t *testing.T) {
	m := &Manager{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		err   error
		code  int
		retry string
	}{
		{fmt.Errorf("load: %w", node.ErrStale), http.StatusServiceUnavailable, "1"},
		{fmt.Errorf("load: %w", node.ErrUnavailable), http.StatusServiceUnavailable, "1"},
		{fmt.Errorf("load: %w", io.ErrUnexpectedEOF), http.StatusInternalServerError, ""},
	} {
		rec := httptest.NewRecorder()
		m.defaultErrorFunc(rec, httptest.NewRequest("GET", "/", nil), tc.err)
		if rec.Code != tc.code || rec.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%v: %d, Retry-After %q; want %d, %q", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.code, tc.retry)
		}
	}
}
