package persist

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// memBackend keeps sessions in memory: what InMemory stores use. Tests and
// the simulator run many of them; maps with per-bucket id sets and a
// deadline heap do what they need at a fraction of Badger's cost.
type memBackend struct {
	mu       sync.RWMutex
	sessions map[string]*crdt.Session
	buckets  map[int]map[string]struct{}
	// expiry holds (deadline, id) pairs, stale ones included: a pair is
	// current only while the session's deadline still equals it. Deadlines
	// are fixed at creation, so stale pairs are rare.
	expiry expiryHeap
}

func newMemBackend() *memBackend {
	return &memBackend{sessions: make(map[string]*crdt.Session), buckets: make(map[int]map[string]struct{})}
}

func (m *memBackend) load(id string) (*crdt.Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sessions[id], nil
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
		for id := range m.buckets[b] {
			ss = append(ss, m.sessions[id])
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
	for _, s := range m.sessions {
		if err := fn(s); err != nil {
			return err
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
		s, ok := m.sessions[e.id]
		if !ok || s.Absolute != e.deadline {
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
	for _, w := range ws {
		b := BucketOf(w.id)
		if w.state == nil {
			delete(m.sessions, w.id)
			delete(m.buckets[b], w.id)
			continue
		}
		m.sessions[w.id] = w.state
		if w.old == nil {
			// New here: a session stored before is in its bucket's set.
			set := m.buckets[b]
			if set == nil {
				set = make(map[string]struct{})
				m.buckets[b] = set
			}
			set[w.id] = struct{}{}
		}
		if w.newDeadline != w.oldDeadline && w.newDeadline != 0 {
			heap.Push(&m.expiry, dueEntry{deadline: w.newDeadline, id: w.id})
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
	m.sessions, m.buckets, m.expiry = nil, nil, nil
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
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
