package daemon

import (
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"
)

type peerResponse struct {
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Region string   `json:"region"`
	// ClockOffsetSeconds estimates the peer's clock minus ours; null until
	// an anti-entropy message from the peer has carried its time.
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds"`
	// LastSync is when the last anti-entropy round with it completed;
	// null before the first.
	LastSync *jsonTime `json:"last_sync"`
	// GossipMesh reports whether the peer is in this peer's gossip
	// forwarding mesh: deltas flow to it directly. A new connection joins
	// it within about a second; until then only anti-entropy reaches it.
	GossipMesh bool `json:"gossip_mesh"`
}

type selfResponse struct {
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Region string   `json:"region"`
}

type peersResponse struct {
	Self  selfResponse   `json:"self"`
	Peers []peerResponse `json:"peers"`
}

// healthz: GET /healthz, the process is up.
func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: GET /readyz, the peer can serve.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.o.Ready != nil {
		if err := a.o.Ready(); err != nil {
			writeError(w, errorf(http.StatusServiceUnavailable, codeNotReady, "%v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// peers: GET /v1/peers, the connected peers.
func (a *api) peers(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if _, e := query(r, false); e != nil {
		writeError(w, e)
		return
	}
	t := a.n.Transport()
	resp := peersResponse{
		Self:  selfResponse{ID: string(a.n.ID()), Addrs: []string{}, Region: a.o.Region},
		Peers: []peerResponse{},
	}
	inMesh := make(map[peer.ID]bool)
	if t != nil {
		for _, m := range t.Addrs() {
			resp.Self.Addrs = append(resp.Self.Addrs, m.String())
		}
		for _, id := range t.MeshPeers() {
			inMesh[id] = true
		}
	}
	for _, p := range a.n.Peers() {
		pr := peerResponse{ID: string(p.ID), Addrs: []string{}}
		if p.ClockOffsetKnown {
			off := p.ClockOffset.Seconds()
			pr.ClockOffsetSeconds = &off
		}
		if !p.LastSync.IsZero() {
			ls := jsonTime(p.LastSync)
			pr.LastSync = &ls
		}
		if id, err := peer.Decode(string(p.ID)); t != nil && err == nil {
			pr.Region = t.PeerRegion(id)
			pr.GossipMesh = inMesh[id]
			for _, m := range t.PeerAddrs(id) {
				pr.Addrs = append(pr.Addrs, m.String())
			}
		}
		resp.Peers = append(resp.Peers, pr)
	}
	writeJSON(w, http.StatusOK, resp)
}
