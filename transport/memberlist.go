package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-multiaddr"
)

// MembersFile is the name of the member list inside Config.DataDir: the
// known members with their addresses (and signed peer records), rewritten
// atomically when they change, so that a restarted peer redials all of
// them and not only its bootstrap peers.
const MembersFile = "members.json"

// Saving the member list: changes are written after saveDelay (so that a
// burst of changes makes one write), and last-seen times every saveEvery.
const (
	saveDelay = 500 * time.Millisecond
	saveEvery = time.Minute
)

const membersFileVersion = 1

type savedMember struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs,omitempty"`
	Region   string    `json:"region,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Record is the member's signed peer record (a libp2p envelope), when
	// known: its addresses are authenticated by the member's key.
	Record []byte `json:"record,omitempty"`
}

// savedForgotten is a forgotten member whose records (up to Seq) are
// ignored until At + ForgetAfter, so that a restart does not let other
// members bring it back.
type savedForgotten struct {
	ID  string    `json:"id"`
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
}

type savedMembers struct {
	Version   int              `json:"version"`
	Members   []savedMember    `json:"members"`
	Forgotten []savedForgotten `json:"forgotten,omitempty"`
}

// persistDirty asks the saver to write the member list soon. It may be
// called with t.mem.mu held.
func (t *Transport) persistDirty() {
	if t.cfg.DataDir == "" {
		return
	}
	select {
	case t.saveSignal <- struct{}{}:
	default:
	}
}

// saveLoop writes the member list after changes (coalesced over
// saveDelay) and every saveEvery; Close writes it a last time.
func (t *Transport) saveLoop() {
	defer t.wg.Done()
	runLoop(t.ctx, saveEvery, t.saveSignal, saveDelay, t.saveMembers)
}

func (t *Transport) saveMembers() {
	if t.cfg.DataDir == "" {
		return
	}
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mem.mu.Lock()
	list := savedMembers{Version: membersFileVersion, Members: make([]savedMember, 0, len(t.mem.members))}
	for _, m := range t.mem.members {
		sm := savedMember{ID: m.id.String(), Region: m.region, LastSeen: m.lastSeen}
		for _, a := range m.addrs {
			sm.Addrs = append(sm.Addrs, a.String())
		}
		list.Members = append(list.Members, sm)
	}
	ttl := t.tombstoneTTL()
	for id, ts := range t.mem.forgotten {
		if time.Since(ts.at) >= ttl {
			delete(t.mem.forgotten, id)
			continue
		}
		list.Forgotten = append(list.Forgotten, savedForgotten{ID: id.String(), Seq: ts.seq, At: ts.at})
	}
	t.mem.mu.Unlock()
	for i := range list.Members {
		id, _ := peer.Decode(list.Members[i].ID)
		if r := t.peerRegion(id); r != "" {
			list.Members[i].Region = r
		}
		if env := t.cab().GetPeerRecord(id); env != nil {
			if raw, err := env.Marshal(); err == nil {
				list.Members[i].Record = raw
			}
		}
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.log.Warn("transport: encode member list", "err", err)
		return
	}
	if err := writeFileAtomic(filepath.Join(t.cfg.DataDir, MembersFile), data); err != nil {
		t.saveLog.Warn("transport: could not save the member list", "err", err)
	}
}

// writeFileAtomic replaces path with data: a synced temporary file renamed
// over it, then the directory synced, so a crash leaves the old or the new
// file, never a torn one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readMembers reads the member list saved by an earlier run; nil when
// there is none or it cannot be used (logged: a damaged file costs its
// members, not the start).
func (t *Transport) readMembers() *savedMembers {
	if t.cfg.DataDir == "" {
		return nil
	}
	path := filepath.Join(t.cfg.DataDir, MembersFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.log.Warn("transport: could not read the member list", "path", path, "err", err)
		return nil
	}
	var list savedMembers
	if err := json.Unmarshal(data, &list); err != nil {
		t.log.Warn("transport: ignoring a damaged member list", "path", path, "err", err)
		return nil
	}
	if list.Version != membersFileVersion {
		t.log.Warn("transport: ignoring a member list of an unknown version", "path", path, "version", list.Version)
		return nil
	}
	return &list
}

// loadForgotten restores the saved list's tombstones. It runs before the
// host listens: a member that connects at once pushes its records, and
// one of a forgotten peer, taken before its tombstone is back, would make
// that peer a member again.
func (t *Transport) loadForgotten(list *savedMembers) {
	if list == nil {
		return
	}
	t.mem.mu.Lock()
	defer t.mem.mu.Unlock()
	for _, f := range list.Forgotten {
		if id, err := peer.Decode(f.ID); err == nil && time.Since(f.At) < t.tombstoneTTL() {
			t.mem.forgotten[id] = tombstone{seq: f.Seq, at: f.At}
		}
	}
}

// loadMembers learns the members of the saved list. Entries that do not
// parse, fail their record's signature check, or are outside the
// allowlist are skipped with a warning.
func (t *Transport) loadMembers(list *savedMembers) {
	if list == nil {
		return
	}
	n := 0
	for _, sm := range list.Members {
		id, err := peer.Decode(sm.ID)
		if err != nil {
			t.log.Warn("transport: member list: bad peer id", "id", sm.ID, "err", err)
			continue
		}
		if id == t.h.ID() || !t.gater.member(id) {
			continue // the allowlist may have changed since
		}
		var addrs []multiaddr.Multiaddr
		if len(sm.Record) > 0 {
			env, pr, err := openPeerRecord(sm.Record)
			if err != nil || pr.PeerID != id {
				t.log.Warn("transport: member list: bad signed record, entry skipped", "peer", id, "err", err)
				continue
			}
			if _, err := t.cab().ConsumePeerRecord(env, peerstore.PermanentAddrTTL); err != nil {
				t.log.Warn("transport: member list: record refused by the peerstore", "peer", id, "err", err)
			}
			addrs = pr.Addrs
		} else {
			for _, s := range sm.Addrs {
				a, err := multiaddr.NewMultiaddr(s)
				if err != nil {
					t.log.Warn("transport: member list: bad address", "peer", id, "addr", s, "err", err)
					continue
				}
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			continue // nowhere to dial it: it will be learned again if it connects
		}
		m, _ := t.learn(id, addrs, "member list")
		if m == nil {
			continue
		}
		t.mem.mu.Lock()
		if m.lastSeen.IsZero() {
			m.lastSeen = sm.LastSeen
		}
		if m.region == "" {
			m.region = sm.Region
		}
		t.mem.mu.Unlock()
		n++
	}
	t.log.Info("transport: loaded the member list", "path", filepath.Join(t.cfg.DataDir, MembersFile), "members", n)
}

// openPeerRecord checks a serialized signed peer record: a valid envelope
// signature, and a peer id matching the signing key.
func openPeerRecord(raw []byte) (*record.Envelope, *peer.PeerRecord, error) {
	env, rec, err := record.ConsumeEnvelope(raw, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return nil, nil, err
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return nil, nil, errors.New("not a peer record")
	}
	if !pr.PeerID.MatchesPublicKey(env.PublicKey) {
		return nil, nil, errForgedRecord
	}
	return env, pr, nil
}

var errForgedRecord = errors.New("record's peer id does not match its signing key")
