package sessionhttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
)

// responseWriter commits the session right before the response header goes
// out: on the first WriteHeader (other than 1xx informational ones), Write,
// ReadFrom, Flush or Hijack, or when the handler returns having written
// nothing. Everything else reaches the underlying writer unchanged, and
// Unwrap lets http.ResponseController reach deadlines and full duplex.
type responseWriter struct {
	http.ResponseWriter
	m  *Manager
	r  *http.Request
	st *state

	committed bool
	err       error // commit failed: ErrorFunc answered, the handler's writes are dropped
}

// commit commits the session once. On failure ErrorFunc answers the
// request and the handler's own response is dropped.
func (w *responseWriter) commit() error {
	if w.committed {
		return w.err
	}
	w.committed = true
	// A commit is local and quick; it must not be lost because the client
	// stopped waiting for the response.
	ctx := context.WithoutCancel(w.r.Context())
	if err := w.m.commitHeader(ctx, w.ResponseWriter.Header(), w.st); err != nil {
		w.err = fmt.Errorf("%w: %w", ErrAborted, err)
		w.m.errorFunc(w.ResponseWriter, w.r, err)
	}
	return w.err
}

// finish runs when the handler returns.
func (w *responseWriter) finish() {
	if !w.committed {
		_ = w.commit()
		return
	}
	if w.err == nil {
		w.m.lateCommit(context.WithoutCancel(w.r.Context()), w.st)
	}
}

// WriteHeader implements http.ResponseWriter.
func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational (103 Early Hints): the final header comes later.
		if w.err == nil {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if w.commit() != nil {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *responseWriter) Write(b []byte) (int, error) {
	if err := w.commit(); err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile) path.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if err := w.commit(); err != nil {
		return 0, err
	}
	return io.Copy(w.ResponseWriter, src)
}

// Flush implements http.Flusher: server-sent events and other streams get
// their cookie with the first flush.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *responseWriter) FlushError() error {
	if err := w.commit(); err != nil {
		return err
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker (WebSocket upgrades). The session is
// committed first and its headers (Set-Cookie) are left in Header() for a
// handler that writes its own response; after the hijack nothing more is
// written to the connection, and later changes to an existing session are
// still saved when the handler returns.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if err := w.commit(); err != nil {
		return nil, nil, err
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
