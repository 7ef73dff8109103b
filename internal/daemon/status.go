package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/transport"
)

// memberResponse is one member of the mesh, as /v1/peers and /v1/status
// show it.
type memberResponse struct {
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Region string   `json:"region"`
	// Connected: a connection is open and the member answers pings.
	Connected bool `json:"connected"`
	// Since is when Connected last took its value (when the member was
	// learned if it never connected); null if unknown.
	Since *jsonTime `json:"since"`
	// LastSeen is the last sign of life from the member; null if none
	// yet. LastContactSeconds is the time since then.
	LastSeen           *jsonTime `json:"last_seen"`
	LastContactSeconds *float64  `json:"last_contact_seconds"`
	// ClockOffsetSeconds estimates the peer's clock minus ours; null until
	// an anti-entropy message from the peer has carried its time.
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds"`
	// LastSync is when the last anti-entropy round with it completed;
	// null before the first. Both are of the current connection: the
	// Core forgets a peer's state when its connection closes.
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
	Self  selfResponse     `json:"self"`
	Peers []memberResponse `json:"peers"`
}

type statusResponse struct {
	Self          selfResponse `json:"self"`
	Version       string       `json:"version"`
	GoVersion     string       `json:"go_version"`
	Started       jsonTime     `json:"started"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Ready         bool         `json:"ready"`
	// NotReady says why Ready is false.
	NotReady string         `json:"not_ready,omitempty"`
	Members  membersSummary `json:"members"`
	// Peers lists every known member, as /v1/peers does.
	Peers []memberResponse `json:"peers"`
	Store storeSummary     `json:"store"`
	// Placement is partial replication's state (docs/partial-replication.md).
	Placement placementSummary `json:"placement"`
}

type placementSummary struct {
	// Replicas is the holders of each session per region, "all" under
	// full replication.
	Replicas string `json:"replicas"`
	Slots    int    `json:"slots"`
	// SlotsHeld are the slots this peer holds; SlotsMoving those it
	// gained and has not compared with another holder yet plus those it
	// still stores sessions of without holding them (until handed off).
	SlotsHeld   int `json:"slots_held"`
	SlotsMoving int `json:"slots_moving"`
	// RegionMembers counts the peers slots are placed over in this
	// peer's region.
	RegionMembers int `json:"region_members"`
	// SessionsHandedOff and HandoffBytes count what this peer handed to
	// holders since it started.
	SessionsHandedOff uint64 `json:"sessions_handed_off"`
	HandoffBytes      uint64 `json:"handoff_bytes"`
}

func placementOf(p node.PlacementStatus) placementSummary {
	out := placementSummary{Replicas: "all", Slots: p.Slots, SlotsHeld: p.SlotsHeld,
		SlotsMoving: p.SlotsGained + p.SlotsToHandOff, RegionMembers: len(p.RegionMembers),
		SessionsHandedOff: p.SessionsHandedOff, HandoffBytes: p.HandoffBytes}
	if p.Replicas > 0 {
		out.Replicas = fmt.Sprint(p.Replicas)
	}
	return out
}

type membersSummary struct {
	Known     int `json:"known"`
	Reachable int `json:"reachable"`
}

type storeSummary struct {
	// Sessions counts the sessions stored, tombstones of destroyed
	// sessions included (they are kept until their deadline).
	Sessions int `json:"sessions"`
	// DigestRoot combines every bucket digest (16 hex digits): peers
	// holding the same sessions have the same root.
	DigestRoot string `json:"digest_root"`
	// DiskBytes is the space the store's files occupy.
	DiskBytes  int64  `json:"disk_bytes"`
	DataDir    string `json:"data_dir"`
	Durability string `json:"durability"`
	Encrypted  bool   `json:"encrypted"`
}

// healthz: GET /healthz, the process is up.
func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: GET /readyz, the peer can serve.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.notReady(); err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, codeNotReady, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *api) notReady() error {
	if a.o.Ready == nil {
		return nil
	}
	return a.o.Ready()
}

func (a *api) self() selfResponse {
	s := selfResponse{ID: string(a.n.ID()), Addrs: []string{}, Region: a.o.Region}
	if t := a.o.Transport; t != nil {
		for _, m := range t.Addrs() {
			s.Addrs = append(s.Addrs, m.String())
		}
	}
	return s
}

// peers: GET /v1/peers, every known member of the mesh.
func (a *api) peers(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, peersResponse{Self: a.self(), Peers: a.members(time.Now())})
}

// members lists the known members with what the transport and the node
// know of each, sorted by id.
func (a *api) members(now time.Time) []memberResponse {
	t := a.o.Transport
	out := []memberResponse{}
	byID := make(map[string]int)
	inMesh := make(map[peer.ID]bool)
	if t != nil {
		for _, id := range t.MeshPeers() {
			inMesh[id] = true
		}
		for _, m := range t.Members() {
			mr := memberResponse{ID: m.ID.String(), Addrs: []string{}, Region: m.Region, Connected: m.Connected, GossipMesh: inMesh[m.ID]}
			for _, ad := range m.Addrs {
				mr.Addrs = append(mr.Addrs, ad.String())
			}
			if !m.Since.IsZero() {
				s := jsonTime(m.Since)
				mr.Since = &s
			}
			if !m.LastSeen.IsZero() {
				s := jsonTime(m.LastSeen)
				ago := max(0, now.Sub(m.LastSeen).Seconds())
				mr.LastSeen, mr.LastContactSeconds = &s, &ago
			}
			byID[mr.ID] = len(out)
			out = append(out, mr)
		}
	}
	for _, p := range a.n.Peers() {
		i, ok := byID[string(p.ID)]
		if !ok {
			// Connected but not (yet) a member: show it all the same.
			mr := memberResponse{ID: string(p.ID), Addrs: []string{}, Connected: true}
			if id, err := peer.Decode(string(p.ID)); t != nil && err == nil {
				mr.Region = t.PeerRegion(id)
				mr.GossipMesh = inMesh[id]
				for _, m := range t.PeerAddrs(id) {
					mr.Addrs = append(mr.Addrs, m.String())
				}
			}
			i = len(out)
			out = append(out, mr)
		}
		if p.ClockOffsetKnown {
			off := p.ClockOffset.Seconds()
			out[i].ClockOffsetSeconds = &off
		}
		if !p.LastSync.IsZero() {
			ls := jsonTime(p.LastSync)
			out[i].LastSync = &ls
		}
	}
	slices.SortFunc(out, func(x, y memberResponse) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// statusStore is what /v1/status and /v1/backup need of the store beyond
// node.Store: persist.Store has it; a store in memory answers zeros.
type statusStore interface {
	Len() int
	DiskUsage() (int64, error)
}

// backupStore is a store that can stream a consistent snapshot.
type backupStore interface {
	Backup(w io.Writer) (persist.BackupInfo, error)
}

// status: GET /v1/status, a summary for operators and `sessionmesh status`.
func (a *api) status(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	now := time.Now()
	resp := statusResponse{
		Self:          a.self(),
		Version:       Version(),
		GoVersion:     GoVersion(),
		Started:       jsonTime(a.o.Started),
		UptimeSeconds: now.Sub(a.o.Started).Seconds(),
		Peers:         a.members(now),
		Placement:     placementOf(a.n.Placement()),
		Store: storeSummary{
			DigestRoot: fmt.Sprintf("%016x", a.n.Store().Digests().Root),
			DataDir:    a.o.DataDir,
			Durability: a.o.Durability,
			Encrypted:  a.o.Encrypted,
		},
	}
	if err := a.notReady(); err != nil {
		resp.NotReady = err.Error()
	} else {
		resp.Ready = true
	}
	for _, m := range resp.Peers {
		resp.Members.Known++
		if m.Connected {
			resp.Members.Reachable++
		}
	}
	if st, ok := a.n.Store().(statusStore); ok {
		resp.Store.Sessions = st.Len()
		du, err := st.DiskUsage()
		if err != nil {
			a.o.Logger.Warn("status: measuring the store's disk use", "err", err)
		}
		resp.Store.DiskBytes = du
	}
	writeJSON(w, http.StatusOK, resp)
}

// forget: DELETE /v1/peers/{id}, forget a member now.
func (a *api) forget(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	id, err := peer.Decode(r.PathValue("id"))
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, codeInvalidArgument, "peer id %q: %v", r.PathValue("id"), err))
		return
	}
	t := a.o.Transport
	if t == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, codeUnavailable, "this peer has no libp2p transport"))
		return
	}
	if err := t.Forget(id); err != nil {
		if errors.Is(err, transport.ErrUnknownPeer) {
			writeError(w, errorf(http.StatusNotFound, codePeerNotFound, "%s is not a known member", id))
			return
		}
		a.o.Logger.Error("forget", "peer", id.String(), "err", err)
		writeError(w, errorf(http.StatusInternalServerError, codeInternal, "forget %s: %v", id, err))
		return
	}
	a.o.Logger.Info("member forgotten by request", "peer", id.String())
	w.WriteHeader(http.StatusNoContent)
}

// BackupStatusTrailer is the HTTP trailer of GET /v1/backup: "ok" once the
// whole snapshot is written, else what failed. A backup is usable only with
// "ok": a failure after the first byte cannot change the status code.
const BackupStatusTrailer = "Sessionmesh-Backup-Status"

// backup: GET /v1/backup, a consistent snapshot of the store, restorable
// with `sessionmesh restore`.
func (a *api) backup(w http.ResponseWriter, r *http.Request) {
	if !plainRequest(w, r) {
		return
	}
	b, ok := a.n.Store().(backupStore)
	if !ok {
		writeError(w, errorf(http.StatusNotImplemented, codeUnavailable, "this peer's store cannot be backed up"))
		return
	}
	// A large store takes longer than the server's write timeout.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil {
		a.o.Logger.Warn("backup: lifting the write deadline", "err", err)
	}
	start := time.Now()
	// The status goes out with the first byte: a failure before it (a
	// store in memory, a closed store) still gets a proper error.
	lw := &firstWrite{w: w, start: func() {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="sessionmesh-%s.backup"`, start.UTC().Format("20060102T150405Z")))
		w.Header().Set("Trailer", BackupStatusTrailer)
		w.WriteHeader(http.StatusOK)
	}}
	info, err := b.Backup(lw)
	switch {
	case err != nil && !lw.started && errors.Is(err, errors.ErrUnsupported):
		writeError(w, errorf(http.StatusNotImplemented, codeUnavailable, "this peer's store cannot be backed up: %v", err))
		return
	case err != nil && !lw.started:
		a.o.Logger.Error("backup failed", "err", err)
		writeError(w, errorf(http.StatusInternalServerError, codeInternal, "backup: %v", err))
		return
	case err != nil:
		a.o.Logger.Error("backup failed", "err", err)
		w.Header().Set(BackupStatusTrailer, "failed: "+strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, err.Error()))
		return
	}
	w.Header().Set(BackupStatusTrailer, "ok")
	a.o.Logger.Info("backup written", "bytes", info.Bytes, "encrypted", info.Encrypted, "duration", time.Since(start))
}

// firstWrite calls start before the first byte goes to w.
type firstWrite struct {
	w       io.Writer
	start   func()
	started bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.start()
	}
	return f.w.Write(p)
}
