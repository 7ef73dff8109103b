package persist

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// memBackend keeps sessions in memory: what InMemory stores use. Tests and
// the simulator run many of them; maps with per-bucket id sets and a
// deadline heap do what they need at a fraction of Badger's cost.
type memBackend struct {
	mu sync.RWMutex
	// buckets holds each digest bucket's sessions by id: a write
	// updates one small map (a store of a million sessions has about 250
	// a bucket) and a bucket's scan reads its own. nil once closed.
	buckets []map[string]*memRecord
	// expiry holds (deadline, id) pairs, stale ones included: a pair is
	// current only while the session's deadline still equals it. Deadlines
	// are fixed at creation, so stale pairs are rare.
	expiry expiryHeap
}

// memRecord holds a session's latest state. The cache keeps a pointer to
// it beside the state (cacheNode.rec), so that a commit of a cached
// session replaces the state in place rather than through a map
// assignment, which hashed the id and probed a large map on every write.
// Under mu; s is nil once the record left its map (a deletion): a commit
// that comes with it then goes through the map.
type memRecord struct {
	s *crdt.Session
}

func newMemBackend() *memBackend {
	return &memBackend{buckets: make([]map[string]*memRecord, Buckets)}
}

func (m *memBackend) load(id string) (*crdt.Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.get(id), nil
}

// get returns the session of id, or nil; the caller holds mu.
func (m *memBackend) get(id string) *crdt.Session {
	if m.buckets == nil {
		return nil
	}
	if r := m.buckets[BucketOf(id)][id]; r != nil {
		return r.s
	}
	return nil
}

// storageOrder orders ids as Badger's keys do: by length, then bytes.
func storageOrder(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

func (m *memBackend) scanBuckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error, _ func(error)) error {
	var ss []*crdt.Session
	m.mu.RLock()
	for _, b := range buckets {
		start := len(ss)
		for _, r := range m.buckets[b] {
			ss = append(ss, r.s)
		}
		slices.SortFunc(ss[start:], func(a, b *crdt.Session) int { return storageOrder(a.ID, b.ID) })
	}
	m.mu.RUnlock()
	for _, s := range ss {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (m *memBackend) scanAll(fn func(*crdt.Session) error, _ func(error)) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, set := range m.buckets {
		for _, r := range set {
			if err := fn(r.s); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memBackend) due(cutoff int64, limit int, _ *dueEntry) ([]dueEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dueEntry
	for len(m.expiry) > 0 && m.expiry[0].deadline <= cutoff {
		e := m.expiry[0]
		s := m.get(e.id)
		if s == nil || s.Absolute != e.deadline {
			heap.Pop(&m.expiry) // stale
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		// Popped now: the caller deletes what due returns, as Badger's
		// index entries go with their records.
		heap.Pop(&m.expiry)
		out = append(out, e)
	}
	return out, false, nil
}

func (m *memBackend) commit(ws []write) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range ws {
		w := &ws[i]
		b := w.bucket
		if w.state == nil {
			if r := m.buckets[b][w.id]; r != nil {
				r.s = nil
				delete(m.buckets[b], w.id)
			}
			w.rec = nil
			continue
		}
		if r := w.rec; r != nil && r.s != nil {
			r.s = w.state
		} else {
			set := m.buckets[b]
			if set == nil {
				set = make(map[string]*memRecord)
				m.buckets[b] = set
			}
			if r = set[w.id]; r == nil {
				// The key is a copy of its own: the id of a state lies
				// in its cache node or its delta, which the map would
				// otherwise keep alive after they are replaced.
				r = &memRecord{}
				set[strings.Clone(w.id)] = r
			}
			r.s = w.state
			w.rec = r
		}
		if w.newDeadline != w.oldDeadline && w.newDeadline != 0 {
			m.expiry.push(dueEntry{deadline: w.newDeadline, id: w.id})
		}
	}
	return len(ws), nil
}

func (m *memBackend) sync() error { return nil }
func (m *memBackend) reclaim()    {}

func (m *memBackend) releasePages() (int, error) { return 0, nil }
func (m *memBackend) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets, m.expiry = nil, nil
	return nil
}

// expiryHeap orders (deadline, id) pairs, id breaking ties so that the
// order never depends on insertion (the simulator's runs are replayed).
type expiryHeap []dueEntry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	return h[i].id < h[j].id
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }

// push is heap.Push without boxing e in an interface (an allocation for
// each new deadline).
func (h *expiryHeap) push(e dueEntry) {
	*h = append(*h, e)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.Less(i, p) {
			break
		}
		h.Swap(i, p)
		i = p
	}
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
