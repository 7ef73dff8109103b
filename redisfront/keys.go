package redisfront

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// Reserved fields of a key's session. User hash fields are stored escaped
// (encodeField) so that none can be mistaken for these.
const (
	// fieldKey holds the key name, for SCAN, KEYS and RENAME.
	fieldKey = "\x00k"
	// fieldString holds the value of a string key.
	fieldString = "\x00s"
)

// maxGenerations bounds how many times one key name can be created again
// after its session ended (DEL, expiry) within one absolute lifetime.
const maxGenerations = 64

// errKeyExhausted reports a key re-created maxGenerations times within one
// lifetime.
var errKeyExhausted = errors.New("sessionmesh: key re-created too often within one session lifetime, try again later")

// errRetry asks the caller to look the key up again: a concurrent command
// changed its session between the lookup and the write.
var errRetry = errors.New("redisfront: retry")

// encodeField maps a hash field to the session field that stores it: a
// field that is empty or starts with NUL gets one more NUL in front, so
// that stored names of length >= 2 starting with one NUL and then another
// byte are left to the reserved fields. Sessions refuse empty field names,
// which Redis allows.
func encodeField(f []byte) string {
	if len(f) == 0 || f[0] == 0 {
		return "\x00" + string(f)
	}
	return string(f)
}

// decodeField reverses encodeField; ok is false for reserved fields.
func decodeField(stored string) (string, bool) {
	if len(stored) == 0 || stored[0] != 0 {
		return stored, true
	}
	if len(stored) >= 2 && stored[1] != 0 {
		return "", false
	}
	return stored[1:], true
}

// keyToken is the session token of generation gen of key: a hash of the
// key name, never stored. The node stores and sends only SessionID of it,
// a hash of this hash.
func keyToken(key []byte, gen int) string {
	const prefix = "sessionmesh/redis/v1\x00"
	var stack [256]byte
	b := append(append(append(stack[:0], prefix...), byte(gen)), key...)
	sum := sha256.Sum256(b)
	// Encoded on the stack: one allocation, the string's.
	var tok [43]byte // base64.RawURLEncoding.EncodedLen(sha256.Size)
	base64.RawURLEncoding.Encode(tok[:], sum[:])
	return string(tok[:])
}

// keyCacheSlots is the size of keyCache: enough that the live keys of a
// busy peer (tens of thousands) mostly keep their slot.
const keyCacheSlots = 1 << 16

// keyCacheMaxName bounds the key names keyCache holds (session stores'
// names are 20-70 bytes), so that it holds at most about 15 MiB.
const keyCacheMaxName = 96

// keyCache keeps the node.Key of the first generation of recently used key
// names. keyToken and node.KeyOf are two SHA-256, a quarter of a read's
// CPU, and both are pure functions of the name: an entry is never stale,
// and holds nothing that the name alone does not give. Direct-mapped and
// lock-free: a slot holds the last name that hashed to it.
type keyCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[cachedKey]
}

// cachedKey is one allocation holding the name and the Key's token and id:
// with 10k keys and more, each separate allocation a read walks is a cache
// miss (a pipelined GET spent a tenth of its CPU waiting on the entry, its
// name and the id), and these sit in adjacent cache lines.
type cachedKey struct {
	k    node.Key // its strings point into kb
	n    uint8
	kb   [node.KeyBytes]byte
	name [keyCacheMaxName]byte
}

// is reports whether the entry is the one of name key.
func (ck *cachedKey) is(key []byte) bool {
	return int(ck.n) == len(key) && string(ck.name[:ck.n]) == string(key)
}

func newKeyCache() *keyCache {
	return &keyCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cachedKey], keyCacheSlots)}
}

// of returns the Key of generation gen of key.
func (c *keyCache) of(key []byte, gen int) node.Key {
	if gen != 0 || len(key) > keyCacheMaxName {
		k, _ := node.KeyOf(keyToken(key, gen))
		return k
	}
	slot := &c.slots[maphash.Bytes(c.seed, key)%uint64(len(c.slots))]
	if ck := slot.Load(); ck != nil && ck.is(key) {
		return ck.k
	}
	k, _ := node.KeyOf(keyToken(key, 0)) // a keyToken is always a token
	ck := &cachedKey{n: uint8(len(key))}
	copy(ck.name[:], key)
	ck.k = k.CopyTo(&ck.kb)
	slot.Store(ck)
	return ck.k
}

// peek loads the entry of key's slot and returns a byte of it, for
// warmKeys.
func (c *keyCache) peek(key []byte) uint8 {
	if len(key) > keyCacheMaxName {
		return 0
	}
	if ck := c.slots[maphash.Bytes(c.seed, key)%uint64(len(c.slots))].Load(); ck != nil {
		return ck.n
	}
	return 0
}

// kind is a key's Redis type.
type kind int

const (
	kindNone kind = iota
	kindString
	kindHash
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindHash:
		return "hash"
	}
	return "none"
}

// entry is a key as a lookup found it: the token of its current
// generation, its session when live, and the tokens of the generations
// that ended before it.
type entry struct {
	key  []byte
	gen  int
	k    node.Key
	dead []string
	live bool
	// exhausted: every generation of the key ended within one lifetime
	// (maxGenerations). It reads as no key; writes answer
	// errKeyExhausted until the old generations are collected.
	exhausted bool
	sess      node.Session
}

// kind returns the key's type; a live session without any user field (all
// hash fields deleted) reads as no key, as an empty hash does in Redis.
func (e *entry) kind() kind {
	if !e.live {
		return kindNone
	}
	// fieldString makes a string even beside user fields (a SET and an
	// HSET on two peers at once merge into both); besides fieldKey, which
	// every key's session holds, only user fields remain.
	k := kindNone
	for f := range e.sess.Values() {
		switch f {
		case fieldString:
			return kindString
		case fieldKey:
		default:
			k = kindHash
		}
	}
	return k
}

// str returns the value of a string key, shared with the session snapshot:
// do not modify it.
func (e *entry) str() (string, bool) {
	if !e.live {
		return "", false
	}
	return e.sess.GetString(fieldString)
}

// hash returns the user fields of a hash key, decoded.
func (e *entry) hash() map[string][]byte {
	out := make(map[string][]byte)
	if !e.live {
		return out
	}
	for k, v := range e.sess.Fields() {
		if f, ok := decodeField(k); ok {
			out[f] = v
		}
	}
	return out
}

// kv is a hash field and its value, shared with the session snapshot.
type kv struct{ field, value string }

// pairs returns the user fields of a hash key, decoded, sorted by stored
// name, without copying values.
func (e *entry) pairs() []kv {
	if !e.live {
		return nil
	}
	n := 0
	for k := range e.sess.Values() {
		if _, ok := decodeField(k); ok {
			n++
		}
	}
	out := make([]kv, 0, n)
	for k, v := range e.sess.Values() {
		if f, ok := decodeField(k); ok {
			out = append(out, kv{f, v})
		}
	}
	return out
}

// hashPairs appends the user fields of a hash key to buf, decoded, in one
// pass; isString reports a string key (whose user fields, if a concurrent
// HSET left some, do not count: kind says string), for which it returns
// nothing.
func (e *entry) hashPairs(buf []kv) (ps []kv, isString bool) {
	if !e.live {
		return buf, false
	}
	for k, v := range e.sess.Values() {
		if k == fieldString {
			return buf[:0], true
		}
		if f, ok := decodeField(k); ok {
			buf = append(buf, kv{f, v})
		}
	}
	return buf, false
}

// ttl returns the time left before the session expires on this peer.
func (e *entry) ttl(now time.Time) time.Duration {
	return e.sess.ExpiresAt().Sub(now)
}

// lookup finds the current generation of key: the first that is visible,
// or the first this node holds nothing for. Ended generations before it
// are tombstones kept at least as long as it (see create), so the walk
// never stops early at one that garbage collection removed. A key whose
// every generation ended within one lifetime reads as no key (exhausted).
func (s *Server) lookup(key []byte) (*entry, error) {
	e := new(entry)
	if err := s.lookupInto(e, key); err != nil {
		return nil, err
	}
	return e, nil
}

// lookupInto is lookup into the caller's entry, which a read keeps on its
// stack.
func (s *Server) lookupInto(e *entry, key []byte) error {
	*e = entry{key: key}
	for g := 0; g < maxGenerations; g++ {
		k := s.keys.of(key, g)
		sess, err := s.n.GetKey(s.ctx, k)
		if err == nil {
			e.gen, e.k, e.live, e.sess = g, k, true, sess
			return nil
		}
		if !errors.Is(err, node.ErrNotFound) {
			return err
		}
		if _, err := s.n.StoredKey(k); errors.Is(err, node.ErrNotFound) {
			e.gen, e.k = g, k
			return nil
		} else if err != nil {
			return err
		}
		e.dead = append(e.dead, k.Token())
	}
	e.gen, e.dead, e.exhausted = maxGenerations, nil, true
	return nil
}

// write is what a command writes to a key.
type write struct {
	set    map[string][]byte // stored field names
	remove []string
	// replace removes every user field that set does not write.
	replace bool
	// idle is the expiry asked for (EX and friends); 0 keeps the session's
	// (or, for a new session, takes the default).
	idle  time.Duration
	touch bool
	// lifetime of a new session; 0 takes the default.
	lifetime time.Duration
}

// errTooLarge reports a write over a size limit of the mesh (the node's
// crdt.Limits), in words a Redis user reads: the node's own error names
// the session and the internal fields a key maps to.
var errTooLarge = errors.New("sessionmesh: over the mesh's size limit")

// fits checks w's names and values against the node's limits.
func (s *Server) fits(e *entry, w write) error {
	l := s.n.Limits()
	if len(e.key) > l.MaxValueBytes {
		return fmt.Errorf("%w: key name of %d bytes (max %d)", errTooLarge, len(e.key), l.MaxValueBytes)
	}
	for k, v := range w.set {
		switch {
		case k == fieldString && len(v) > l.MaxValueBytes:
			return fmt.Errorf("%w: value of %d bytes (max %d)", errTooLarge, len(v), l.MaxValueBytes)
		case len(k) > l.MaxKeyBytes:
			return fmt.Errorf("%w: hash field name of %d bytes (max %d)", errTooLarge, len(k), l.MaxKeyBytes)
		case len(v) > l.MaxValueBytes:
			return fmt.Errorf("%w: value of hash field %q of %d bytes (max %d)", errTooLarge, k, len(v), l.MaxValueBytes)
		}
	}
	return nil
}

// put applies w to e, creating the key's session when it has none.
func (s *Server) put(e *entry, w write) error {
	if err := s.fits(e, w); err != nil {
		return err
	}
	if w.idle > s.cfg.Lifetime {
		w.idle = s.cfg.Lifetime
	}
	if e.live {
		remove := w.remove
		// A string's session holds fieldKey and fieldString only: a SET
		// over it has nothing to remove.
		if _, isString := e.sess.GetString(fieldString); w.replace && !(isString && e.sess.Len() == 2) {
			for _, k := range e.sess.Keys() {
				if _, ok := w.set[k]; !ok && k != fieldKey {
					remove = append(remove, k)
				}
			}
		}
		// ErrNotFound: expired or destroyed since the lookup.
		return mapNotFound(s.n.SaveKey(s.ctx, e.k, node.Save{Set: w.set, Remove: remove, IdleTimeout: w.idle, Touch: w.touch}))
	}
	return s.create(e, w)
}

// create starts the session of e's current generation. The ended
// generations before it become tombstones kept until after the new
// session's deadline, so that lookups walk past them for as long as the
// new one can be visible.
func (s *Server) create(e *entry, w write) error {
	if e.exhausted {
		return errKeyExhausted
	}
	idle, lifetime := w.idle, w.lifetime
	if idle <= 0 {
		idle = min(s.cfg.SessionIdleTimeout, s.cfg.Lifetime)
	}
	if lifetime <= 0 {
		lifetime = s.cfg.Lifetime
	}
	if len(e.dead) > 0 {
		keep := s.n.Now().Add(lifetime + time.Minute)
		for _, t := range e.dead {
			if err := s.n.Retire(s.ctx, t, keep); err != nil {
				return fmt.Errorf("retire an ended generation: %w", err)
			}
		}
	}
	fields := maps.Clone(w.set)
	if fields == nil {
		fields = make(map[string][]byte, 1)
	}
	fields[fieldKey] = e.key
	_, err := s.n.Create(s.ctx, node.WithToken(e.k.Token()), node.WithIdleTimeout(idle), node.WithLifetime(lifetime), node.WithFields(fields))
	if errors.Is(err, node.ErrExists) || errors.Is(err, node.ErrDestroyed) {
		return errRetry // created or ended by a concurrent command
	}
	return err
}

// destroy ends a live key's session on every peer.
func (s *Server) destroy(e *entry) error {
	err := s.n.Destroy(s.ctx, e.k.Token())
	if errors.Is(err, node.ErrNotFound) {
		return nil
	}
	return err
}
