package node

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Reads on a peer that does not hold a session (partial replication): the
// node asks the session's holders (Core.ReadRemote picks them: its region's
// first) and merges their answers with what it stores itself (a write of
// its own not handed off yet). One hop; answers are awaited up to
// Config.ConsistencyWait.

// remoteReads are the reads waiting for holders' answers, by session id.
type remoteReads struct {
	mu sync.Mutex
	m  map[string][]chan *crdt.Session
}

// Sessions read from their holders stay in a bounded cache (remoteCache)
// for remoteCacheTTL. Deltas go to holders only (Core.deliverBatch), so a
// cached copy misses the writes made elsewhere meanwhile (what this peer
// still receives of them, gossip from full-replication peers and
// anti-entropy, is merged in: Ready.NotHeld): an unversioned read may be
// up to the TTL behind. Calls carrying a version never settle for a
// cached copy that does not cover it: they ask the holders.
const (
	remoteCacheSessions = 10_000
	remoteCacheTTL      = time.Second
)

// remoteCache is an LRU of sessions read from their holders.
type remoteCache struct {
	// used is set by the first put: until then (always, under full
	// replication) forget and merge, which every local write and remote
	// batch calls, take no lock.
	used atomic.Bool
	mu   sync.Mutex
	m    map[string]*list.Element
	lru  list.List // front: most recent; values *cachedRead
}

type cachedRead struct {
	s  *crdt.Session
	at time.Time
}

// get returns a copy of the cached session of id read less than the TTL
// ago. The copy is not known covered (crdt.Session.Covered), so a write
// made from it carries the whole state.
func (c *remoteCache) get(id string, now time.Time) (*crdt.Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil, false
	}
	r := e.Value.(*cachedRead)
	if now.Sub(r.at) >= remoteCacheTTL {
		c.lru.Remove(e)
		delete(c.m, id)
		return nil, false
	}
	c.lru.MoveToFront(e)
	out := r.s.Header()
	_, _ = out.Merge(r.s) // same id: cannot fail
	return out, true
}

func (c *remoteCache) put(s *crdt.Session, now time.Time) {
	c.used.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*list.Element{}
	}
	if e, ok := c.m[s.ID]; ok {
		e.Value = &cachedRead{s: s.Clone(), at: now}
		c.lru.MoveToFront(e)
		return
	}
	c.m[s.ID] = c.lru.PushFront(&cachedRead{s: s.Clone(), at: now})
	if c.lru.Len() > remoteCacheSessions {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*cachedRead).s.ID)
	}
}

// forget drops the cached copies of what ds write: this peer's own writes,
// which the copy it keeps until handoff holds.
func (c *remoteCache) forget(ds []*crdt.Session) {
	if !c.used.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		if e, ok := c.m[d.ID]; ok {
			c.lru.Remove(e)
			delete(c.m, d.ID)
		}
	}
}

// merge joins received deltas into the cached copies they concern.
func (c *remoteCache) merge(ds []*crdt.Session) {
	if len(ds) == 0 || !c.used.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		if e, ok := c.m[d.ID]; ok {
			r := e.Value.(*cachedRead)
			s := r.s.Clone()
			if _, err := s.Merge(d); err == nil {
				e.Value = &cachedRead{s: s, at: r.at}
			}
		}
	}
}

// storeGet is store.Get that, under partial replication, reads a session
// this peer does not hold from its holders (or its cache of them). It
// returns persist.ErrNotFound when no one asked holds it.
func (n *Node) storeGet(id string) (*crdt.Session, error) {
	return n.storeGetFrom(id, true)
}

// storeGetFrom is storeGet, through the cache when cached.
func (n *Node) storeGetFrom(id string, cached bool) (*crdt.Session, error) {
	local, err := n.store.Get(id)
	if n.core.ServesID(id) {
		return local, err
	}
	if err != nil && !errors.Is(err, persist.ErrNotFound) {
		return nil, err
	}
	if cached {
		if s, ok := n.remoteCache.get(id, n.cfg.Clock.Now()); ok {
			n.m.Add("remote_reads_cached", 1)
			if local != nil {
				if _, err := s.Merge(local); err != nil {
					return nil, fmt.Errorf("node: cached read: %w", err)
				}
			}
			return s, nil
		}
	}
	s, err := n.readRemote(id, local)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, persist.ErrNotFound
	}
	return s, nil
}

// readRemote asks the holders of id and merges their answers into local
// (not modified). When every holder of this peer's region stays silent
// for ConsistencyWait, it asks the other regions' holders for one more
// round before it gives up.
func (n *Node) readRemote(id string, local *crdt.Session) (*crdt.Session, error) {
	ch := make(chan *crdt.Session, 16)
	n.remote.mu.Lock()
	if n.remote.m == nil {
		n.remote.m = map[string][]chan *crdt.Session{}
	}
	n.remote.m[id] = append(n.remote.m[id], ch)
	n.remote.mu.Unlock()
	defer n.dropRemote(id, ch)
	var (
		asked []PeerID
		own   bool
	)
	n.step(func(c *Core, _ time.Time) { asked, own = c.ReadRemote(id, false) })
	if len(asked) == 0 {
		n.m.Add("remote_reads_failed", 1, "reason", "no_holder")
		if local == nil {
			return nil, fmt.Errorf("node: read %s: no holder connected: %w", id, ErrUnavailable)
		}
		return local, nil
	}
	// The holders' answers come first and this peer's copy merges into
	// them: a decoded state is not known covered (crdt.Session.Covered),
	// so a write made from the result carries the whole state, which the
	// copy kept here until handoff then holds with its version entry.
	start := time.Now()
	out, answered, err := n.awaitHolders(ch, len(asked))
	if err != nil {
		return nil, err
	}
	if answered == 0 && own {
		n.step(func(c *Core, _ time.Time) { asked, _ = c.ReadRemote(id, true) })
		if len(asked) > 0 {
			n.m.Add("remote_reads_widened", 1)
			if out, answered, err = n.awaitHolders(ch, len(asked)); err != nil {
				return nil, err
			}
		}
	}
	if answered == 0 && local == nil {
		// Silence is not absence: a holder cut off without the
		// connection dropping yet (failure detection takes seconds)
		// may hold the session, even a write this peer made and
		// handed off.
		return nil, fmt.Errorf("node: read %s: no holder answered within %v: %w", id, n.cfg.ConsistencyWait, ErrUnavailable)
	}
	if local != nil {
		if out == nil {
			out = local
		} else if _, err := out.Merge(local); err != nil {
			return nil, fmt.Errorf("node: remote read: %w", err)
		}
	}
	n.m.Observe("remote_read_seconds", time.Since(start).Seconds())
	n.step(func(c *Core, now time.Time) { c.ObserveRead(now, out) })
	if out != nil && answered > 0 {
		n.remoteCache.put(out, n.cfg.Clock.Now())
	}
	return out, nil
}

// awaitHolders collects up to asked answers from ch for at most
// ConsistencyWait, and returns their merge (nil when no one holds the
// session) and how many answered. A holder that does not answer in time
// (slow, or gone since) does not fail the read: the answers so far make
// it. An answer that comes after its round (a silent holder waking up)
// counts in the next round, if there is one: it is as good as any.
func (n *Node) awaitHolders(ch chan *crdt.Session, asked int) (out *crdt.Session, answered int, err error) {
	timer := time.NewTimer(n.cfg.ConsistencyWait)
	defer timer.Stop()
	for got := 0; got < asked; got++ {
		select {
		case s := <-ch:
			answered++
			if s == nil {
				continue
			}
			if out == nil {
				out = s
				continue
			}
			if _, err := out.Merge(s); err != nil {
				return nil, 0, fmt.Errorf("node: remote read: %w", err)
			}
		case <-timer.C:
			n.m.Add("remote_reads_failed", 1, "reason", "timeout")
			return out, answered, nil
		case <-n.done:
			return nil, 0, ErrClosed
		}
	}
	return out, answered, nil
}

func (n *Node) dropRemote(id string, ch chan *crdt.Session) {
	n.remote.mu.Lock()
	defer n.remote.mu.Unlock()
	ws := n.remote.m[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.remote.m, id)
	} else {
		n.remote.m[id] = ws
	}
}

// remoteAnswer hands a fetch answer to the reads waiting for it, and
// reports whether there were any (the answer then goes no further: this
// peer does not hold the session).
func (n *Node) remoteAnswer(data []byte) bool {
	id, s, ok := FetchAnswer(data, n.cfg.Limits)
	if !ok {
		return false
	}
	n.remote.mu.Lock()
	ws := n.remote.m[id]
	n.remote.mu.Unlock()
	if len(ws) == 0 || n.core.ServesID(id) {
		return false
	}
	for _, w := range ws {
		var mine *crdt.Session
		if s != nil {
			mine = s.Clone() // each read merges into its own
		}
		select {
		case w <- mine:
		default:
		}
	}
	return true
}

// FetchAnswer decodes a holder's answer to a fetch (Core.ReadRemote): the
// session id asked for and the holder's copy (nil: it has none). ok is
// false when data is not a well-formed answer. A runtime hands answers to
// the reads waiting for them, as Node does, instead of to the Core while
// it does not hold the session (the simulator drives non-holder reads
// through it).
func FetchAnswer(data []byte, limits crdt.Limits) (id string, s *crdt.Session, ok bool) {
	if kind, err := messageKind(data); err != nil || kind != kindFetched {
		return "", nil, false
	}
	var m fetchMsg
	if err := decodeMsg(data, &m); err != nil {
		return "", nil, false
	}
	if len(m.Batch) > 0 {
		b, err := crdt.UnmarshalBatch(m.Batch, limits)
		if err != nil {
			return "", nil, false
		}
		s = b.Get(m.ID)
	}
	return m.ID, s, true
}

// SetReplicas changes how many peers of each region hold each session on
// this running peer (Config.Replicas; 0: every peer holds every session)
// and tells its peers. Change the peers of a mesh one at a time, waiting
// for Placement to show no slot moving in between.
func (n *Node) SetReplicas(r int) error {
	if r < 0 {
		return fmt.Errorf("%w: replicas %d: want 0 (all) or a positive number", ErrInvalid, r)
	}
	if _, ok := n.store.(Dropper); r > 0 && !ok {
		return fmt.Errorf("node: replicas: store %T cannot drop handed-off sessions", n.store)
	}
	n.step(func(c *Core, now time.Time) { c.SetReplicas(now, r) })
	n.kick()
	return nil
}

// Placement returns partial replication's status on this peer.
func (n *Node) Placement() PlacementStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.core.Placement()
}
