package daemon

import (
	"net/http"
	"unicode/utf8"

	"github.com/sessionmesh/sessionmesh/node"
)

type ownerRequest struct {
	Owner string `json:"owner"`
}

type ownedSession struct {
	ID         string   `json:"id"`
	Created    jsonTime `json:"created"`
	LastAccess jsonTime `json:"last_access"`
	Region     string   `json:"region"`
	Peer       string   `json:"peer"`
}

type ownerSessionsResponse struct {
	Sessions []ownedSession `json:"sessions"`
}

type revokeResponse struct {
	// Kept is the caller's session, moved to a new token created after
	// the revocation.
	Kept *tokenResponse `json:"kept"`
}

// checkOwner refuses an owner id the node does not take.
func checkOwner(o string) *apiError {
	if o == "" || len(o) > 1024 || !utf8.ValidString(o) {
		return errorf(http.StatusBadRequest, codeInvalidArgument, "owner must be 1 to 1024 bytes of UTF-8")
	}
	return nil
}

// ownerPath returns the {owner} of the path, checked.
func ownerPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	o := r.PathValue("owner")
	if e := checkOwner(o); e != nil {
		writeError(w, e)
		return "", false
	}
	return o, true
}

// ownerCall checks a call on an owner's sessions that carries no query
// and no body, and returns the {owner} of the path; it has answered when
// ok is false.
func ownerCall(w http.ResponseWriter, r *http.Request) (owner string, ok bool) {
	if !plainRequest(w, r) {
		return "", false
	}
	if e := noBody(r); e != nil {
		writeError(w, e)
		return "", false
	}
	return ownerPath(w, r)
}

// setOwner: PUT /v1/session/owner.
func (a *api) setOwner(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	tok, e := token(r)
	if e != nil {
		writeError(w, e)
		return
	}
	ctx, v, e := requestVersion(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req ownerRequest
	if e := readJSON(w, r, a.o.MaxBodyBytes, false, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := checkOwner(req.Owner); e != nil {
		writeError(w, e)
		return
	}
	if err := a.n.SetOwner(ctx, tok, req.Owner); err != nil {
		a.nodeError(w, r, err)
		return
	}
	setVersionHeader(w, *v)
	w.WriteHeader(http.StatusNoContent)
}

// ownerSessions: GET /v1/owners/{owner}/sessions.
func (a *api) ownerSessions(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	owner, ok := ownerPath(w, r)
	if !ok {
		return
	}
	list, err := a.n.OwnerSessions(r.Context(), owner)
	if err != nil {
		a.nodeError(w, r, err)
		return
	}
	resp := ownerSessionsResponse{Sessions: make([]ownedSession, 0, len(list))}
	for _, s := range list {
		resp.Sessions = append(resp.Sessions, ownedSession{ID: s.ID, Created: jsonTime(s.Created),
			LastAccess: jsonTime(s.LastAccess), Region: s.Region, Peer: string(s.Peer)})
	}
	writeJSON(w, http.StatusOK, resp)
}

// destroyOwned: DELETE /v1/owners/{owner}/sessions/{id}.
func (a *api) destroyOwned(w http.ResponseWriter, r *http.Request) {
	owner, ok := ownerCall(w, r)
	if !ok {
		return
	}
	if err := a.n.DestroyOwned(r.Context(), owner, r.PathValue("id")); err != nil {
		a.nodeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// revokeOwner: DELETE /v1/owners/{owner}/sessions. With X-Session-Token,
// the caller's session is kept under a new token, given in the answer.
func (a *api) revokeOwner(w http.ResponseWriter, r *http.Request) {
	owner, ok := ownerCall(w, r)
	if !ok {
		return
	}
	ctx, v, e := requestVersion(r)
	if e != nil {
		writeError(w, e)
		return
	}
	fresh, err := a.n.RevokeOwner(ctx, owner, r.Header.Get(TokenHeader))
	if err != nil {
		a.nodeError(w, r, err)
		return
	}
	if fresh == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	setVersionHeader(w, *v)
	id, _ := node.SessionID(fresh)
	writeJSON(w, http.StatusOK, revokeResponse{Kept: &tokenResponse{Token: fresh, ID: id}})
}
