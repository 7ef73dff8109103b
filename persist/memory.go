package persist

import (
	"container/heap"
	"context"
	"slices"
	"sync"
)

// memBackend keeps sessions in memory: what InMemory stores use. Tests and
// the simulator run many of them; a map with per-bucket id sets and a
// deadline heap does what they need at a fraction of Badger's cost.
type memBackend struct {
	mu       sync.RWMutex
	sessions map[string]memRecord
	buckets  map[int]map[string]struct{}
	// expiry holds (deadline, id) pairs, stale ones included: a pair is
	// current only while the record's deadline still equals it. Deadlines
	// are fixed at creation, so stale pairs are rare.
	expiry expiryHeap
}

type memRecord struct {
	raw      []byte
	deadline int64
}

func newMemBackend() *memBackend {
	return &memBackend{sessions: make(map[string]memRecord), buckets: make(map[int]map[string]struct{})}
}

func (m *memBackend) load(id string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.sessions[id]
	if !ok {
		return nil, nil
	}
	return slices.Clone(r.raw), nil
}

func (m *memBackend) scanBucket(ctx context.Context, bucket int, fn func(raw []byte) error) error {
	m.mu.RLock()
	ids := make([]string, 0, len(m.buckets[bucket]))
	for id := range m.buckets[bucket] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	raws := make([][]byte, len(ids))
	for i, id := range ids {
		// Records are never modified in place (commit replaces them), so
		// sharing them outside the lock is safe.
		raws[i] = m.sessions[id].raw
	}
	m.mu.RUnlock()
	for _, raw := range raws {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	return nil
}

func (m *memBackend) scanAll(fn func(bucket int, raw []byte) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for b, ids := range m.buckets {
		for id := range ids {
			if err := fn(b, m.sessions[id].raw); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memBackend) due(cutoff int64, limit int) ([]dueEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dueEntry
	for len(m.expiry) > 0 && m.expiry[0].deadline <= cutoff {
		e := m.expiry[0]
		r, ok := m.sessions[e.id]
		if !ok || r.deadline != e.deadline {
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

func (m *memBackend) commit(ws []write) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range ws {
		b := BucketOf(w.id)
		if w.enc == nil {
			delete(m.sessions, w.id)
			delete(m.buckets[b], w.id)
			continue
		}
		m.sessions[w.id] = memRecord{raw: w.enc, deadline: w.newDeadline}
		set := m.buckets[b]
		if set == nil {
			set = make(map[string]struct{})
			m.buckets[b] = set
		}
		set[w.id] = struct{}{}
		if w.newDeadline != w.oldDeadline && w.newDeadline != 0 {
			heap.Push(&m.expiry, dueEntry{deadline: w.newDeadline, id: w.id})
		}
	}
	return nil
}

func (m *memBackend) sync() error { return nil }
func (m *memBackend) reclaim()    {}
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
