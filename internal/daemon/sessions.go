package daemon

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
)

// Value encodings of the ?encoding= parameter: field values in JSON are
// either the text itself (UTF-8) or standard base64 (RFC 4648, padded) of
// arbitrary bytes.
const (
	encodingUTF8   = "utf8"
	encodingBase64 = "base64"
)

type createRequest struct {
	Fields             map[string]string `json:"fields"`
	Owner              *string           `json:"owner"`
	IdleTimeoutSeconds *int64            `json:"idle_timeout_seconds"`
	LifetimeSeconds    *int64            `json:"lifetime_seconds"`
}

type updateRequest struct {
	Set    map[string]string `json:"set"`
	Remove []string          `json:"remove"`
}

type tokenResponse struct {
	Token string `json:"token"`
	ID    string `json:"id"`
}

type sessionResponse struct {
	ID                 string            `json:"id"`
	Fields             map[string]string `json:"fields"`
	Encoding           string            `json:"encoding"`
	Created            jsonTime          `json:"created"`
	LastAccess         jsonTime          `json:"last_access"`
	ExpiresAt          jsonTime          `json:"expires_at"`
	Deadline           jsonTime          `json:"deadline"`
	IdleTimeoutSeconds int64             `json:"idle_timeout_seconds"`
}

// query checks the query string: only "encoding" where values travel, and
// nothing elsewhere. It returns the encoding.
func query(r *http.Request, values bool) (string, *apiError) {
	q := r.URL.Query()
	enc := encodingUTF8
	for k, v := range q {
		if k != "encoding" || !values {
			return "", errorf(http.StatusBadRequest, codeUnknownParameter, "unknown query parameter %q", k)
		}
		if len(v) != 1 || (v[0] != encodingUTF8 && v[0] != encodingBase64) {
			return "", errorf(http.StatusBadRequest, codeInvalidEncoding, "encoding must be utf8 or base64")
		}
		enc = v[0]
	}
	return enc, nil
}

// token returns the session token of the request.
func token(r *http.Request) (string, *apiError) {
	t := r.Header.Get(TokenHeader)
	if t == "" {
		return "", errorf(http.StatusBadRequest, codeMissingToken, "missing %s header", TokenHeader)
	}
	return t, nil
}

// checkKey refuses a field key the API does not write: empty, or starting
// with node.ReservedKeyPrefix, which adapters such as sessionhttp keep for
// their own bookkeeping.
func checkKey(k string) *apiError {
	switch {
	case k == "":
		return errorf(http.StatusBadRequest, codeInvalidArgument, "empty field key")
	case strings.HasPrefix(k, node.ReservedKeyPrefix):
		return errorf(http.StatusBadRequest, codeInvalidArgument, "field key %q: keys starting with U+0000 are reserved", k)
	}
	return nil
}

// decodeValues turns request field values into bytes.
func decodeValues(in map[string]string, enc string) (map[string][]byte, *apiError) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string][]byte, len(in))
	for k, v := range in {
		if e := checkKey(k); e != nil {
			return nil, e
		}
		if enc == encodingUTF8 {
			out[k] = []byte(v)
			continue
		}
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, codeInvalidEncoding, "field %q: not valid standard base64: %v", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// seconds converts an optional duration in seconds, bounded by max.
func seconds(name string, v *int64, max time.Duration) (time.Duration, *apiError) {
	if v == nil {
		return 0, nil
	}
	if *v <= 0 || *v > int64(max/time.Second) {
		return 0, errorf(http.StatusBadRequest, codeInvalidArgument, "%s must be in [1, %d], got %d", name, int64(max/time.Second), *v)
	}
	return time.Duration(*v) * time.Second, nil
}

// nodeError maps an error of the node to an answer.
func (a *api) nodeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	switch {
	case errors.Is(err, node.ErrNotFound):
		e = errorf(http.StatusNotFound, codeSessionNotFound, "no session for this token: never issued, expired or destroyed")
	case errors.Is(err, node.ErrTooManyFields):
		e = errorf(http.StatusConflict, codeTooManyFields, "%v", err)
	case errors.Is(err, crdt.ErrTooLarge):
		e = errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "%v", err)
	case errors.Is(err, node.ErrStale):
		w.Header().Set("Retry-After", "1")
		e = errorf(http.StatusServiceUnavailable, codeStaleSession,
			"this peer does not hold the session at the version in %s yet, and could not fetch it from the peers that wrote it in time: retry, here or on another peer", VersionHeader)
	case errors.Is(err, node.ErrUnavailable):
		// Partial replication: no holder of the session answered. Not
		// a not-found (that would log a live session out), nor a fault
		// of this peer: retry, here or on another peer.
		w.Header().Set("Retry-After", "1")
		e = errorf(http.StatusServiceUnavailable, codeHolderUnavailable,
			"this peer does not hold the session and no peer that holds it answered: retry, here or on another peer")
	case errors.Is(err, node.ErrInvalid):
		e = errorf(http.StatusBadRequest, codeInvalidArgument, "%v", err)
	case errors.Is(err, node.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e = errorf(http.StatusServiceUnavailable, codeUnavailable, "the peer is shutting down or the request was cancelled")
	default:
		a.o.Logger.Error("http: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errorf(http.StatusInternalServerError, codeInternal, "internal error")
	}
	writeError(w, e)
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// plainRequest starts a call that takes no query parameters: it marks the
// answer no-store, and answers a request with a bad query itself (false).
func plainRequest(w http.ResponseWriter, r *http.Request) bool {
	noStore(w)
	if _, e := query(r, false); e != nil {
		writeError(w, e)
		return false
	}
	return true
}

// create: POST /v1/sessions.
func (a *api) create(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	enc, e := query(r, true)
	if e != nil {
		writeError(w, e)
		return
	}
	var req createRequest
	if e := readJSON(w, r, a.o.MaxBodyBytes, true, &req); e != nil {
		writeError(w, e)
		return
	}
	fields, e := decodeValues(req.Fields, enc)
	if e != nil {
		writeError(w, e)
		return
	}
	var opts []node.CreateOption
	if len(fields) > 0 {
		opts = append(opts, node.WithFields(fields))
	}
	idle, e := seconds("idle_timeout_seconds", req.IdleTimeoutSeconds, a.o.MaxLifetime)
	if e != nil {
		writeError(w, e)
		return
	}
	if idle > 0 {
		opts = append(opts, node.WithIdleTimeout(idle))
	}
	life, e := seconds("lifetime_seconds", req.LifetimeSeconds, a.o.MaxLifetime)
	if e != nil {
		writeError(w, e)
		return
	}
	if life > 0 {
		opts = append(opts, node.WithLifetime(life))
	}
	if req.Owner != nil {
		if e := checkOwner(*req.Owner); e != nil {
			writeError(w, e)
			return
		}
		opts = append(opts, node.WithOwner(*req.Owner))
	}
	var v node.Version
	tok, err := a.n.Create(node.WithVersion(r.Context(), &v), opts...)
	if err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, v)
	id, _ := node.SessionID(tok)
	writeJSON(w, http.StatusCreated, tokenResponse{Token: tok, ID: id})
}

// read: GET /v1/session.
func (a *api) read(w http.ResponseWriter, r *http.Request) {
	enc, tok, ctx, v, ok := a.sessionRequest(w, r)
	if !ok {
		return
	}
	s, err := a.n.Get(ctx, tok)
	if err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, *v)
	resp := sessionResponse{
		ID:                 s.ID(),
		Fields:             make(map[string]string),
		Encoding:           enc,
		Created:            jsonTime(s.Created()),
		LastAccess:         jsonTime(s.LastAccess()),
		ExpiresAt:          jsonTime(s.ExpiresAt()),
		Deadline:           jsonTime(s.Deadline()),
		IdleTimeoutSeconds: int64(s.IdleTimeout() / time.Second),
	}
	for k, v := range s.Fields() {
		if enc == encodingBase64 {
			resp.Fields[k] = base64.StdEncoding.EncodeToString(v)
			continue
		}
		if !utf8.Valid(v) {
			writeError(w, errorf(http.StatusNotAcceptable, codeNotUTF8, "field %q holds bytes that are not UTF-8: read with ?encoding=base64", k))
			return
		}
		resp.Fields[k] = string(v)
	}
	writeJSON(w, http.StatusOK, resp)
}

// update: PATCH /v1/session.
func (a *api) update(w http.ResponseWriter, r *http.Request) {
	enc, tok, ctx, v, ok := a.sessionRequest(w, r)
	if !ok {
		return
	}
	var req updateRequest
	if e := readJSON(w, r, a.o.MaxBodyBytes, false, &req); e != nil {
		writeError(w, e)
		return
	}
	if len(req.Set) == 0 && len(req.Remove) == 0 {
		writeError(w, errorf(http.StatusBadRequest, codeInvalidArgument, "nothing to update: give \"set\" and/or \"remove\""))
		return
	}
	for _, k := range req.Remove {
		if _, ok := req.Set[k]; ok {
			writeError(w, errorf(http.StatusBadRequest, codeInvalidArgument, "field %q is both set and removed", k))
			return
		}
	}
	for _, k := range req.Remove {
		if e := checkKey(k); e != nil {
			writeError(w, e)
			return
		}
	}
	set, e := decodeValues(req.Set, enc)
	if e != nil {
		writeError(w, e)
		return
	}
	if err := a.n.Update(ctx, tok, set, req.Remove...); err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, *v)
	w.WriteHeader(http.StatusNoContent)
}

// touch: POST /v1/session/touch.
func (a *api) touch(w http.ResponseWriter, r *http.Request) { a.tokenAction(w, r, a.n.Touch) }

// destroy: DELETE /v1/session.
func (a *api) destroy(w http.ResponseWriter, r *http.Request) { a.tokenAction(w, r, a.n.Destroy) }

// tokenAction runs a node call that takes only the session token and
// answers 204.
func (a *api) tokenAction(w http.ResponseWriter, r *http.Request, do func(context.Context, string) error) {
	tok, ctx, v, ok := a.tokenOnly(w, r)
	if !ok {
		return
	}
	if err := do(ctx, tok); err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, *v)
	w.WriteHeader(http.StatusNoContent)
}

// renew: POST /v1/session/renew.
func (a *api) renew(w http.ResponseWriter, r *http.Request) {
	tok, ctx, v, ok := a.tokenOnly(w, r)
	if !ok {
		return
	}
	fresh, err := a.n.Renew(ctx, tok)
	if err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, *v)
	id, _ := node.SessionID(fresh)
	writeJSON(w, http.StatusOK, tokenResponse{Token: fresh, ID: id})
}

// sessionRequest reads what every call on one session carries: the value
// encoding asked for and the session token. It answers the error itself.
// The returned context carries the request's session version (v, from
// VersionHeader), which the call updates.
func (a *api) sessionRequest(w http.ResponseWriter, r *http.Request) (enc, tok string, ctx context.Context, v *node.Version, ok bool) {
	noStore(w)
	enc, e := query(r, true)
	if e == nil {
		tok, e = token(r)
	}
	if e == nil {
		ctx, v, e = requestVersion(r)
	}
	if e != nil {
		writeError(w, e)
		return "", "", nil, nil, false
	}
	return enc, tok, ctx, v, true
}

// tokenOnly checks a request that carries the token and nothing else (no
// query, no body) and returns the token; it has answered when ok is false.
func (a *api) tokenOnly(w http.ResponseWriter, r *http.Request) (tok string, ctx context.Context, v *node.Version, ok bool) {
	if !plainRequest(w, r) {
		return "", nil, nil, false
	}
	tok, e := token(r)
	if e == nil {
		e = noBody(r)
	}
	if e == nil {
		ctx, v, e = requestVersion(r)
	}
	if e != nil {
		writeError(w, e)
		return "", nil, nil, false
	}
	return tok, ctx, v, true
}

// requestVersion reads the session version the request carries, if any,
// and returns a context under which node calls honour and update it.
func requestVersion(r *http.Request) (context.Context, *node.Version, *apiError) {
	var v node.Version
	if vals := r.Header.Values(VersionHeader); len(vals) > 0 {
		var err error
		if len(vals) > 1 {
			return nil, nil, errorf(http.StatusBadRequest, codeInvalidArgument, "%s given %d times", VersionHeader, len(vals))
		}
		if v, err = node.ParseVersion(strings.TrimSpace(vals[0])); err != nil {
			return nil, nil, errorf(http.StatusBadRequest, codeInvalidArgument, "%s: not a session version: %v", VersionHeader, err)
		}
	}
	return node.WithVersion(r.Context(), &v), &v, nil
}

// setVersionHeader hands the session's version to the client.
func setVersionHeader(w http.ResponseWriter, v node.Version) {
	if len(v) > 0 {
		w.Header().Set(VersionHeader, v.String())
	}
}
