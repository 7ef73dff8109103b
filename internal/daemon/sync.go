package daemon

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// syncTimeout bounds the wait of POST /v1/sync for its round.
const syncTimeout = 25 * time.Second

type syncRequest struct {
	// Peer to run the round with; empty lets the node choose.
	Peer string `json:"peer"`
}

type syncResponse struct {
	Peer string `json:"peer"`
	// Result: repaired, in_sync or failed (Reason says why).
	Result          string   `json:"result"`
	Reason          string   `json:"reason,omitempty"`
	SessionsIn      int      `json:"sessions_in"`
	SessionsOut     int      `json:"sessions_out"`
	BytesIn         int      `json:"bytes_in"`
	BytesOut        int      `json:"bytes_out"`
	Started         jsonTime `json:"started"`
	DurationSeconds float64  `json:"duration_seconds"`
}

// sync: POST /v1/sync, run one anti-entropy round now and report what it
// repaired.
func (a *api) sync(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	var req syncRequest
	if e := readJSON(w, r, a.o.MaxBodyBytes, true, &req); e != nil {
		writeError(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), syncTimeout)
	defer cancel()
	rep, err := a.n.Sync(ctx, node.PeerID(req.Peer))
	switch {
	case errors.Is(err, node.ErrUnknownPeer):
		if req.Peer == "" {
			writeError(w, errorf(http.StatusConflict, codePeerNotConnected, "no peer is connected to sync with"))
		} else {
			writeError(w, errorf(http.StatusConflict, codePeerNotConnected, "%s is not connected", req.Peer))
		}
		return
	case errors.Is(err, node.ErrSyncBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, errorf(http.StatusServiceUnavailable, codeBusy, "%v", err))
		return
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, errorf(http.StatusGatewayTimeout, codeUnavailable, "the round did not end within %v (it goes on)", syncTimeout))
		return
	case err != nil:
		if r.Context().Err() != nil {
			return // the client left
		}
		a.o.Logger.Error("sync", "peer", req.Peer, "err", err)
		writeError(w, errorf(http.StatusInternalServerError, codeInternal, "sync: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, syncResponse{
		Peer:            string(rep.Peer),
		Result:          string(rep.Result),
		Reason:          rep.Reason,
		SessionsIn:      rep.SessionsIn,
		SessionsOut:     rep.SessionsOut,
		BytesIn:         rep.BytesIn,
		BytesOut:        rep.BytesOut,
		Started:         jsonTime(rep.Started),
		DurationSeconds: rep.Duration.Seconds(),
	})
}
