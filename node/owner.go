package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// A session may have an owner: the application's user id, which the node
// keeps only as a hash (ownerHash). What the node stores about an owner:
//
//   - in each of its sessions, the field ownerKey holding the hash;
//   - a revocation record, id ownerRecordPrefix+hash, holding the register
//     revokedKey: "every session of this owner created before T is
//     destroyed", T being the register's timestamp, so that the register
//     joins by maximum like any field. It lives until every session it can
//     revoke is past Limits.MaxLifetime, then garbage collection drops it;
//   - index records, id ownerIndexPrefix+hash+"."+day, one per day of
//     creation, listing the ids of the sessions created that day with the
//     region and peer they were created on; each lives as long as the
//     longest-lived session it lists.
//
// All three are sessions to the rest of the node: replicated by gossip,
// repaired by anti-entropy, persisted and collected as they are. Their ids
// hold '~', which no token hash (43 characters of base64url) does.
const (
	ownerKey          = internalPrefix + "owner"
	revokedKey        = internalPrefix + "revoked"
	indexKeyPrefix    = internalPrefix + "s/"
	ownerRecordPrefix = "~o"
	ownerIndexPrefix  = "~i"
	// maxOwnerIndex bounds the sessions one index record lists: an owner
	// creating more sessions in a day goes on being revocable (the
	// register covers every session) but is listed incompletely.
	maxOwnerIndex = 512
	// maxRevokeTombstones bounds the sessions a revocation destroys
	// explicitly in its own write; the register covers the rest.
	maxRevokeTombstones = 1000
	day                 = 24 * time.Hour
)

// ownerHash returns the hash under which owner is stored and sent: an
// HMAC-SHA-256 keyed with Config.OwnerKey when set, else a SHA-256 of the
// owner in a domain of its own, in unpadded base64url.
func (n *Node) ownerHash(owner string) (string, error) {
	if owner == "" || len(owner) > 1024 {
		return "", fmt.Errorf("%w: owner must be 1 to 1024 bytes", ErrInvalid)
	}
	var sum []byte
	if len(n.cfg.OwnerKey) > 0 {
		m := hmac.New(sha256.New, n.cfg.OwnerKey)
		m.Write([]byte(owner))
		sum = m.Sum(nil)
	} else {
		s := sha256.Sum256([]byte("sessionmesh/owner\x00" + owner))
		sum = s[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// WithOwner gives the new session an owner (an application user id).
func WithOwner(owner string) CreateOption { return func(o *createOptions) { o.owner = owner } }

// OwnedSession describes a live session of an owner.
type OwnedSession struct {
	// ID is the session id (SessionID of its token), never the token.
	ID         string
	Created    time.Time
	LastAccess time.Time
	// Region and Peer are where the session was created.
	Region string
	Peer   PeerID

	created crdt.Timestamp // orders sessions created in the same millisecond
}

// withIndex appends to ds the delta that lists session s (created at ts,
// owned by hash) in its owner's index, unless that day's index is full.
func (n *Node) withIndex(ds []*crdt.Session, hash string, s *crdt.Session, ts crdt.Timestamp) []*crdt.Session {
	id := ownerIndexPrefix + hash + "." + strconv.FormatInt(s.Created.Millis()/day.Milliseconds(), 10)
	if r, err := n.store.Get(id); err == nil && r.Fields.Len() >= maxOwnerIndex {
		n.log.Warn("owner index full for the day: the session is revocable but not listed", "limit", maxOwnerIndex)
		return ds
	}
	d := crdt.Create(id, ts, time.UnixMilli(s.Absolute), n.cfg.Limits.MaxLifetime)
	d.Fields = d.Fields.With(indexKeyPrefix+s.ID, crdt.Field{Value: n.cfg.Region + "\x00" + string(n.self), TS: ts})
	return append(ds, d)
}

// withOwnerIndex adds to ds, the deltas of a Renew of old, the index entry
// of the new session (ds[0]) when old has an owner.
func (n *Node) withOwnerIndex(old *crdt.Session, ds []*crdt.Session, ts crdt.Timestamp) []*crdt.Session {
	hash, ok := old.Get(ownerKey)
	if !ok {
		return ds
	}
	return n.withIndex(ds, hash, ds[0], ts)
}

// RevokedBefore returns the revocation time of the owner of hash as the
// store get holds it: every session of the owner created before it is
// destroyed. Zero when get holds no revocation. The simulator judges its
// runs with it.
func RevokedBefore(get func(id string) (*crdt.Session, error), hash string) (crdt.Timestamp, error) {
	r, err := get(ownerRecordPrefix + hash)
	if errors.Is(err, persist.ErrNotFound) {
		return crdt.Timestamp{}, nil
	}
	if err != nil {
		return crdt.Timestamp{}, err
	}
	f, ok := r.Fields.Get(revokedKey)
	if !ok || r.IsDestroyed() {
		return crdt.Timestamp{}, nil
	}
	return f.TS, nil
}

// Revoked reports whether s belongs to an owner whose revocation, as the
// store get holds it, covers s: what every read of the node checks.
func Revoked(get func(id string) (*crdt.Session, error), s *crdt.Session) (bool, error) {
	// Most sessions have no owner, and their lowest key (a version entry)
	// sorts after the owner's: one key read spares a search.
	if k, ok := s.Fields.FirstKey(); !ok || k > ownerKey {
		return false, nil
	}
	hash, ok := s.Get(ownerKey)
	if !ok {
		return false, nil
	}
	t, err := RevokedBefore(get, hash)
	if err != nil || t.IsZero() {
		return false, err
	}
	return s.Created.Compare(t) < 0, nil
}

// OwnerOf returns the owner hash of s, if it has an owner.
func OwnerOf(s *crdt.Session) (string, bool) { return s.Get(ownerKey) }

// WithOwnerField adds to delta d the write, at ts, that gives its session
// the owner of hash.
func WithOwnerField(d *crdt.Session, hash string, ts crdt.Timestamp) {
	d.Fields = d.Fields.With(ownerKey, crdt.Field{Value: hash, TS: ts})
}

// RevocationDelta returns the delta that revokes, at t, every session of
// the owner of hash created before t: the owner's revocation record, kept
// until no session it can revoke can be live anywhere (l.MaxLifetime).
func RevocationDelta(hash string, t crdt.Timestamp, l crdt.Limits) *crdt.Session {
	rec := crdt.Create(ownerRecordPrefix+hash, t, time.UnixMilli(t.Millis()).Add(l.MaxLifetime), l.MaxLifetime)
	rec.Fields = rec.Fields.With(revokedKey, crdt.Field{TS: t})
	return rec
}

func (n *Node) revoked(s *crdt.Session) (bool, error) {
	ok, err := Revoked(n.storeGet, s)
	if err != nil {
		return false, fmt.Errorf("node: owner record: %w", err)
	}
	return ok, nil
}

// SetOwner gives the session of token an owner, or another one. sessionhttp
// calls it at login, next to RenewToken.
func (n *Node) SetOwner(ctx context.Context, token, owner string) error {
	hash, err := n.ownerHash(owner)
	if err != nil {
		return err
	}
	id, ok := SessionID(token)
	if !ok {
		return ErrNotFound
	}
	if err := n.await(ctx, id); err != nil {
		return err
	}
	defer n.writeLocks.lock(id).Unlock()
	now := n.cfg.Clock.Now()
	s, _, err := n.visible(id, now)
	if err != nil {
		return err
	}
	var d *crdt.Session
	err = n.write(ctx, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		ts := stamp()
		d = s.Clone()
		d.Fields = d.Fields.With(ownerKey, crdt.Field{Value: hash, TS: ts})
		k, f := crdt.VersionField(ts)
		d.Fields = d.Fields.With(k, f)
		return n.withIndex([]*crdt.Session{d}, hash, s, ts), nil
	})
	if err != nil {
		return err
	}
	setVersion(ctx, s.Version().Join(d.Version()))
	return nil
}

// OwnerSessions lists the owner's sessions that are live on this peer,
// oldest first.
func (n *Node) OwnerSessions(ctx context.Context, owner string) ([]OwnedSession, error) {
	hash, err := n.ownerHash(owner)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := n.cfg.Clock.Now()
	var out []OwnedSession
	err = n.eachIndexed(hash, now, func(id, where string) error {
		s, la, err := n.visible(id, now)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if h, _ := s.Get(ownerKey); h != hash {
			return nil // given to another owner since
		}
		region, peer, _ := strings.Cut(where, "\x00")
		out = append(out, OwnedSession{ID: id, Created: time.UnixMilli(s.Created.Millis()),
			LastAccess: time.UnixMilli(la), Region: region, Peer: PeerID(peer), created: s.Created})
		return nil
	})
	slices.SortFunc(out, func(a, b OwnedSession) int {
		return a.created.Compare(b.created)
	})
	return out, err
}

// eachIndexed calls fn with every session id the owner's index records
// list here, and where it was created.
func (n *Node) eachIndexed(hash string, now time.Time, fn func(id, where string) error) error {
	last := now.UnixMilli() / day.Milliseconds()
	first := (now.UnixMilli() - n.cfg.Limits.MaxLifetime.Milliseconds()) / day.Milliseconds()
	for d := first; d <= last+1; d++ {
		r, err := n.storeGet(ownerIndexPrefix + hash + "." + strconv.FormatInt(d, 10))
		if errors.Is(err, persist.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("node: owner index: %w", err)
		}
		for k, f := range r.Fields.All() {
			if id, ok := strings.CutPrefix(k, indexKeyPrefix); ok && !f.Removed {
				if err := fn(id, f.Value); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// DestroyOwned destroys the owner's session id (a session id, as listed by
// OwnerSessions, not a token). It fails with ErrNotFound when the session
// is not live here or belongs to another owner.
func (n *Node) DestroyOwned(ctx context.Context, owner, id string) error {
	hash, err := n.ownerHash(owner)
	if err != nil {
		return err
	}
	defer n.writeLocks.lock(id).Unlock()
	now := n.cfg.Clock.Now()
	s, _, err := n.visible(id, now)
	if err != nil {
		return err
	}
	if h, _ := s.Get(ownerKey); h != hash {
		return ErrNotFound
	}
	return n.write(ctx, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		return []*crdt.Session{s.Destroy(stamp())}, nil
	})
}

// RevokeOwner destroys every session of the owner created before now, on
// every peer, for good: it writes the owner's revocation register, which
// no writer anywhere, however late, can undo (a peer that has seen it
// never serves such a session again, whatever writes it receives), and
// destroys the sessions this peer knows of.
//
// With keep, the session of that token (which must be live and the
// owner's) is kept by moving it to a new session created after the
// revocation, as Renew does: RevokeOwner returns the new token. A session
// created before the revocation cannot stay live under its own token on a
// peer that sees the revocation; a new one can.
func (n *Node) RevokeOwner(ctx context.Context, owner, keep string) (string, error) {
	hash, err := n.ownerHash(owner)
	if err != nil {
		return "", err
	}
	var kept *crdt.Session
	var keptID string
	if keep != "" {
		var ok bool
		if keptID, ok = SessionID(keep); !ok {
			return "", ErrNotFound
		}
		if err := n.await(ctx, keptID); err != nil {
			return "", err
		}
		defer n.writeLocks.lock(keptID).Unlock()
	}
	now := n.cfg.Clock.Now()
	if keep != "" {
		if kept, _, err = n.visible(keptID, now); err != nil {
			return "", err
		}
		if h, _ := kept.Get(ownerKey); h != hash {
			return "", fmt.Errorf("%w: the session to keep is not this owner's", ErrNotFound)
		}
	}
	var victims []*crdt.Session
	err = n.eachIndexed(hash, now, func(id, _ string) error {
		if id == keptID || len(victims) >= maxRevokeTombstones {
			return nil
		}
		s, _, err := n.visible(id, now)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err == nil {
			victims = append(victims, s)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	var fresh string
	if kept != nil {
		if fresh, err = newToken(n.cfg.Rand); err != nil {
			return "", err
		}
	}
	var renewed *crdt.Session
	err = n.write(ctx, func(stamp func() crdt.Timestamp) ([]*crdt.Session, error) {
		t := stamp()
		ds := []*crdt.Session{RevocationDelta(hash, t, n.cfg.Limits)}
		for _, s := range victims {
			if s.Created.Compare(t) < 0 {
				ds = append(ds, s.Destroy(t))
			}
		}
		if kept != nil {
			ts := stamp() // after t: the new session outlives the revocation
			newID, _ := SessionID(fresh)
			d := crdt.Create(newID, ts, time.UnixMilli(kept.Absolute), time.Duration(kept.Idle)*time.Millisecond)
			for k, f := range kept.Fields.All() {
				if !f.Removed && !strings.HasPrefix(k, crdt.VersionKeyPrefix) {
					d.Fields = d.Fields.With(k, crdt.Field{Value: f.Value, TS: ts})
				}
			}
			vk, vf := crdt.VersionField(ts)
			d.Fields = d.Fields.With(vk, vf)
			renewed = d
			ds = n.withIndex(append(ds, d, kept.Destroy(ts)), hash, d, ts)
		}
		return ds, nil
	})
	if err != nil {
		return "", err
	}
	if renewed != nil {
		setVersion(ctx, renewed.Version())
	}
	return fresh, nil
}
