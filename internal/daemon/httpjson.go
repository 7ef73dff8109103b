package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Error codes of the HTTP API, in the "code" of an error body.
const (
	codeMalformedJSON     = "malformed_json"
	codeUnknownField      = "unknown_field"
	codeInvalidType       = "invalid_type"
	codeTrailingData      = "trailing_data"
	codeBodyTooLarge      = "body_too_large"
	codeUnexpectedBody    = "unexpected_body"
	codeUnsupportedMedia  = "unsupported_media_type"
	codeUnknownParameter  = "unknown_parameter"
	codeInvalidEncoding   = "invalid_encoding"
	codeInvalidArgument   = "invalid_argument"
	codeMissingToken      = "missing_session_token"
	codeSessionNotFound   = "session_not_found"
	codeStaleSession      = "stale_session"
	codeTooManyFields     = "too_many_fields"
	codeTooLarge          = "too_large"
	codeNotUTF8           = "not_utf8"
	codeUnauthorized      = "unauthorized"
	codeNotFound          = "not_found"
	codeMethodNotAllowed  = "method_not_allowed"
	codeNotReady          = "not_ready"
	codePeerNotFound      = "peer_not_found"
	codePeerNotConnected  = "peer_not_connected"
	codeBusy              = "busy"
	codeUnavailable       = "unavailable"
	codeHolderUnavailable = "holder_unavailable"
	codeInternal          = "internal"
)

// apiError is an error answered to the client: its status and the body
// {"error": {"code": ..., "message": ...}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// readJSON decodes the body of r into dst strictly: Content-Type
// application/json, at most max bytes, valid UTF-8, exactly one JSON value,
// no unknown fields. When optional is set, a request without body and
// without Content-Type decodes as {} (dst unchanged).
func readJSON(w http.ResponseWriter, r *http.Request, max int64, optional bool, dst any) *apiError {
	ct := r.Header.Get("Content-Type")
	if optional && ct == "" && r.ContentLength == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json, got %q", ct)
	}
	if r.ContentLength > max {
		return errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body of %d bytes is over the limit of %d", r.ContentLength, max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body is over the limit of %d bytes", max)
		}
		return errorf(http.StatusBadRequest, codeMalformedJSON, "reading the request body: %v", err)
	}
	if !utf8.Valid(body) {
		return errorf(http.StatusBadRequest, codeMalformedJSON, "request body is not valid UTF-8 (send binary values base64-encoded with ?encoding=base64)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, codeMalformedJSON, "empty request body: want a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return errorf(http.StatusBadRequest, codeUnknownField, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.As(err, &typ):
			where := typ.Field
			if where == "" {
				where = "request body"
			}
			return errorf(http.StatusBadRequest, codeInvalidType, "%s: got JSON %s, want %s", where, typ.Value, jsonType(typ.Type.String()))
		case errors.As(err, &syn):
			return errorf(http.StatusBadRequest, codeMalformedJSON, "malformed JSON at byte %d: %v", syn.Offset, err)
		default:
			return errorf(http.StatusBadRequest, codeMalformedJSON, "malformed JSON: %v", err)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, codeTrailingData, "data after the JSON object")
	}
	if err := checkStrictJSON(body); err != nil {
		return errorf(http.StatusBadRequest, codeMalformedJSON, "%v", err)
	}
	return nil
}

// jsonType names a Go type of a request field for an error message.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.Contains(goType, "int"):
		return "an integer"
	case goType == "string":
		return "a string"
	case strings.Contains(goType, "Request"):
		return "an object"
	}
	return goType
}

// noBody refuses a request that carries a body where none is expected.
func noBody(r *http.Request) *apiError {
	if r.ContentLength > 0 {
		return errorf(http.StatusBadRequest, codeUnexpectedBody, "this request takes no body")
	}
	if r.ContentLength < 0 { // chunked: look
		var b [1]byte
		if n, _ := io.ReadFull(r.Body, b[:]); n > 0 {
			return errorf(http.StatusBadRequest, codeUnexpectedBody, "this request takes no body")
		}
	}
	return nil
}

// jsonTime is a time in JSON as RFC 3339 in UTC with exactly three
// fractional digits ("2026-11-24T14:10:13.946Z").
type jsonTime time.Time

const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func (t jsonTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(jsonTimeLayout) + `"`), nil
}

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var tt time.Time
	if err := json.Unmarshal(b, &tt); err != nil {
		return err
	}
	*t = jsonTime(tt)
	return nil
}
