package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// MembersProtocol returns the stream protocol on which the members of mesh
// pass each other the signed peer records (libp2p envelopes, the same that
// identify exchanges) of every member they know, their own included:
// "/sessionmesh/<mesh>/members/1.0.0", so that records never cross from one
// mesh to another. A stream carries records from the opener only: each is
// a uvarint length followed by the envelope. A record is used only if its
// signature verifies and the peer id it names matches the signing key, so
// a member cannot make another peer's addresses up; records of peers
// outside AllowedPeers are ignored.
func MembersProtocol(mesh string) protocol.ID {
	if mesh == "" {
		mesh = DefaultMesh
	}
	return protocol.ID("/sessionmesh/" + mesh + "/members/1.0.0")
}

// Reasons for which a received peer record is ignored, as counted in
// Stats.RecordsRejected.
const (
	RecordInvalid   = "invalid"    // not a well-formed signed peer record, or a bad signature
	RecordForged    = "forged"     // signed by a key that is not the named peer's
	RecordNotMember = "not_member" // the peer is not in AllowedPeers
	RecordForgotten = "forgotten"  // the peer was forgotten and the record is not newer
	RecordRefused   = "refused"    // the peerstore refused it (too many records)
	RecordTooMany   = "too_many"   // a new peer, with Config.MaxUnconnectedMembers never-connected members known
)

// Limits of the member exchange.
const (
	maxRecordBytes   = 8 << 10
	maxRecordsPerMsg = 4096
	recordsTimeout   = 10 * time.Second
	pushDelay        = 200 * time.Millisecond // coalesces pushes after changes
	pushEvery        = 30 * time.Second       // and pushes anyway, as a safety net
)

// cab returns the peerstore's certified address book, which holds the
// signed peer records (the in-memory peerstore always has one).
func (t *Transport) cab() peerstore.CertifiedAddrBook {
	cab, _ := peerstore.GetCertifiedAddrBook(t.h.Peerstore())
	return cab
}

// consumeRecord checks a signed peer record received from from and, if it
// names a permitted peer, stores it and learns the peer as a member. It
// reports whether membership changed (a new member or new addresses).
func (t *Transport) consumeRecord(raw []byte, from peer.ID) bool {
	env, pr, err := openPeerRecord(raw)
	switch {
	case errors.Is(err, errForgedRecord):
		t.rejectRecord(RecordForged, from, "", err)
		return false
	case err != nil:
		t.rejectRecord(RecordInvalid, from, "", err)
		return false
	}
	id := pr.PeerID
	if id == t.h.ID() || (t.cfg.noRecords && id != from) {
		return false
	}
	if !t.gater.member(id) {
		t.rejectRecord(RecordNotMember, from, id, nil)
		return false
	}
	t.mem.mu.Lock()
	ts, forgotten := t.mem.forgotten[id]
	full := t.mem.members[id] == nil && t.mem.unconnected >= t.cfg.MaxUnconnectedMembers
	t.mem.mu.Unlock()
	if forgotten && pr.Seq <= ts.seq && time.Since(ts.at) < t.tombstoneTTL() {
		t.rejectRecord(RecordForgotten, from, id, nil)
		return false
	}
	if full {
		t.rejectRecord(RecordTooMany, from, id, nil)
		return false
	}
	ok, err := t.cab().ConsumePeerRecord(env, peerstore.PermanentAddrTTL)
	if err != nil {
		t.rejectRecord(RecordRefused, from, id, err)
		return false
	}
	if !ok {
		return false // older than the one we have
	}
	t.stats.recordsAccepted.Add(1)
	_, changed := t.learnFrom(id, pr.Addrs, "record from "+from.String(), true)
	return changed
}

func (t *Transport) rejectRecord(reason string, from, about peer.ID, err error) {
	t.stats.rejectRecord(reason)
	args := []any{"reason", reason, "from", from}
	if about != "" {
		args = append(args, "about", about)
	}
	if err != nil {
		args = append(args, "err", err)
	}
	t.refuseLog.Warn("record/"+reason+"/"+string(from), "transport: ignored a peer record", args...)
}

// identified runs when identify has completed with a peer: its own signed
// record (which identify has stored) and its region are taken, and it gets
// every record we know.
func (t *Transport) identified(ev event.EvtPeerIdentificationCompleted) {
	if !t.gater.permitted(ev.Peer) {
		return
	}
	foreign := !slices.Contains(ev.Protocols, MembersProtocol(t.cfg.Mesh))
	t.mem.mu.Lock()
	if m := t.mem.members[ev.Peer]; m != nil {
		m.foreign = foreign
	}
	t.mem.mu.Unlock()
	if foreign {
		t.memberLog.Warn(string(ev.Peer)+"/foreign", "transport: peer is not a member of this mesh (another mesh name, or an older version): its address is not passed on",
			"peer", ev.Peer, "mesh", t.cfg.Mesh, "agent", ev.AgentVersion)
		return
	}
	changed := false
	if ev.SignedPeerRecord != nil {
		if raw, err := ev.SignedPeerRecord.Marshal(); err == nil {
			changed = t.consumeRecord(raw, ev.Peer)
		}
	}
	if r := parseRegion(ev.AgentVersion); r != "" {
		t.mem.mu.Lock()
		if m := t.mem.members[ev.Peer]; m != nil && m.region != r {
			m.region = r
			t.persistDirty()
		}
		t.mem.mu.Unlock()
	}
	t.spawn(func() { t.pushRecords(ev.Peer) })
	if changed {
		t.schedulePush()
	}
}

// identifyLoop feeds identify's completions to identified.
func (t *Transport) identifyLoop(sub event.Subscription) {
	defer t.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-t.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if ev, ok := e.(event.EvtPeerIdentificationCompleted); ok {
				t.identified(ev)
			}
		}
	}
}

// schedulePush asks the push loop to pass our records to every connected
// member soon.
func (t *Transport) schedulePush() {
	select {
	case t.pushSignal <- struct{}{}:
	default:
	}
}

// pushLoop passes our records to every connected peer after changes
// (coalesced over pushDelay) and every pushEvery.
func (t *Transport) pushLoop() {
	defer t.wg.Done()
	runLoop(t.ctx, pushEvery, t.pushSignal, pushDelay, func() {
		for _, id := range t.tracker.up() {
			t.spawn(func() { t.pushRecords(id) })
		}
	})
}

// records returns the serialized signed records of this host and of every
// member we hold one for.
func (t *Transport) records() [][]byte {
	ids := []peer.ID{t.h.ID()}
	t.mem.mu.Lock()
	for id, m := range t.mem.members {
		if !m.foreign {
			ids = append(ids, id)
		}
	}
	t.mem.mu.Unlock()
	cab := t.cab()
	var out [][]byte
	for _, id := range ids {
		env := cab.GetPeerRecord(id)
		if env == nil {
			continue
		}
		raw, err := env.Marshal()
		if err != nil || len(raw) > maxRecordBytes {
			continue
		}
		out = append(out, raw)
		if len(out) == maxRecordsPerMsg {
			break
		}
	}
	return out
}

// pushRecords sends our records to to over an existing connection.
func (t *Transport) pushRecords(to peer.ID) {
	recs := t.records()
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, recordsTimeout)
	defer cancel()
	ctx = network.WithNoDial(ctx, "member records")
	s, err := t.h.NewStream(ctx, to, MembersProtocol(t.cfg.Mesh))
	if err != nil {
		t.log.Debug("transport: push member records", "peer", to, "err", err)
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(recordsTimeout))
	w := bufio.NewWriter(s)
	var lenBuf [binary.MaxVarintLen64]byte
	for _, r := range recs {
		n := binary.PutUvarint(lenBuf[:], uint64(len(r)))
		_, _ = w.Write(lenBuf[:n])
		_, _ = w.Write(r)
	}
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		t.log.Debug("transport: push member records", "peer", to, "err", err)
		return
	}
	_ = s.Close()
}

// handleRecords reads the records a member pushes.
func (t *Transport) handleRecords(s network.Stream) {
	if !t.enter() {
		_ = s.Reset()
		return
	}
	defer t.leave()
	from := s.Conn().RemotePeer()
	if !t.gater.permitted(from) {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(recordsTimeout))
	r := bufio.NewReader(s)
	changed := false
	for range maxRecordsPerMsg {
		raw, err := readFrame(r, maxRecordBytes)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.rejectRecord(RecordInvalid, from, "", err)
			_ = s.Reset()
			break
		}
		if t.consumeRecord(raw, from) {
			changed = true
		}
	}
	_ = s.Close()
	t.touch(from)
	if changed {
		t.schedulePush()
	}
}
