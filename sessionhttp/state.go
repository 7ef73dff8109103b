package sessionhttp

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
)

// reservedPrefix starts the keys the package keeps for itself; Keys hides
// them and Put refuses them.
const reservedPrefix = node.ReservedKeyPrefix

// persistKey holds RememberMe's choice.
const persistKey = reservedPrefix + "persist"

// value is one field as this request sees it: the stored bytes, and the
// decoded value once asked for.
type value struct {
	raw     []byte
	v       any
	decoded bool
}

// state is one request's view of its session: the fields read at load, the
// request's own writes on top, and which keys it changed. Only the changed
// keys are committed, so concurrent requests on one session merge per
// field. Handlers may use it from several goroutines.
type state struct {
	mu sync.Mutex

	token    string    // live token, "" when the request has no session
	deadline time.Time // absolute deadline of the session of token
	maxAge   time.Duration
	vals     map[string]*value
	dirty    map[string]bool // keys to commit: set if in vals, removed otherwise

	header    bool // header client: token in headers, never in a cookie
	issued    bool // token is new in this request and must be sent
	renew     bool // RenewToken without a session: create one at commit
	destroyed bool // Destroy ended the session this request came with
	resend    bool // cookie attributes changed (RememberMe): send it again

	headerDone bool // the response header has been committed

	// version is the session's version as this request saw it: read from
	// the request, then updated by every node call (node.WithVersion).
	// sentVersion is what the client already holds.
	version     node.Version
	sentVersion string
	owner       string // SetOwner before the session exists: set at create
	wrote       bool   // this request wrote the session: its version is sent
}

func newState() *state {
	return &state{vals: make(map[string]*value), dirty: make(map[string]bool)}
}

// keys returns the visible keys, sorted.
func (s *state) keys() []string {
	out := make([]string, 0, len(s.vals))
	for k := range s.vals {
		if !strings.HasPrefix(k, reservedPrefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// put records a write of raw (the encoding of v) to key.
func (s *state) put(key string, raw []byte, v any) {
	s.vals[key] = &value{raw: raw, v: v, decoded: true}
	s.dirty[key] = true
}

// remove records the removal of key, if present.
func (s *state) remove(key string) bool {
	if _, ok := s.vals[key]; !ok {
		return false
	}
	delete(s.vals, key)
	s.dirty[key] = true
	return true
}

// changes returns the writes and removals to commit.
func (s *state) changes() (set map[string][]byte, removed []string) {
	for _, k := range slices.Sorted(maps.Keys(s.dirty)) {
		if v, ok := s.vals[k]; ok {
			if set == nil {
				set = make(map[string][]byte)
			}
			set[k] = v.raw
		} else {
			removed = append(removed, k)
		}
	}
	return set, removed
}

// reset forgets the session: what Destroy leaves behind.
func (s *state) reset() {
	s.token = ""
	s.deadline = time.Time{}
	s.maxAge = 0
	clear(s.vals)
	clear(s.dirty)
	s.issued = false
	s.renew = false
	s.resend = false
	s.version = nil
	s.owner = ""
}
