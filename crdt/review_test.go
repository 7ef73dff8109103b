package crdt

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// bigWrite is the node's write of a session too large to broadcast whole
// from a copy not known covered: the writer stores the whole state with its
// entry, gossip carries the change alone, unguarded and without the entry.
func (m *guardModel) bigWrite(p int) {
	s := m.peers[p]
	if s.IsDestroyed() || s.Created.IsZero() || s.Covered() {
		m.write(p, true)
		return
	}
	ts := m.stamp(p)
	m.writes++
	whole := s.Clone()
	whole.Guard = &Guard{}
	wire := s.Header()
	key := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(m.t, "bigkey")
	f := Field{Value: "big" + string(rune('0'+m.writes%10)), TS: ts}
	whole.Fields = whole.Fields.With(key, f)
	wire.Fields = wire.Fields.With(key, f)
	k, vf := VersionField(ts)
	whole.Fields = whole.Fields.With(k, vf)
	if ch := mustMerge(m.t, s, whole); ch.Dropped || ch.Unbacked {
		m.t.Fatalf("a writer did not take its own whole state: %+v", ch)
	}
	m.held[VersionEntry{Node: ts.Node, Time: ts.Time}] = s.Fields
	for q := range m.peers {
		if q != p {
			m.queue = append(m.queue, message{q, wire})
		}
	}
}

// fetchAnswer is the node's answer to a fetch: q's copy, whole under an
// empty guard when q knows it covered, else as a plain state; it travels as
// a message to p (and may be lost, joined, duplicated).
func (m *guardModel) fetchAnswer(q, p int) {
	s := m.peers[q]
	if s.Created.IsZero() && !s.IsDestroyed() {
		return
	}
	a := s.Clone()
	if s.Covered() {
		a.Guard = &Guard{}
	}
	m.queue = append(m.queue, message{p, a})
}

// destroy destroys the session at p and queues the tombstone.
func (m *guardModel) destroy(p int) {
	s := m.peers[p]
	if s.Created.IsZero() || s.IsDestroyed() {
		return
	}
	d := s.Destroy(m.stamp(p))
	mustMerge(m.t, s, d)
	for q := range m.peers {
		if q != p {
			m.queue = append(m.queue, message{q, d})
		}
	}
}

// racedWrite is a versioned write decided on p's copy as the node read it,
// while a remote delta merges into the stored copy before the write does
// (the node serialises local writes of a session, not remote merges). The
// entry stands for what the write was decided on plus the write.
func (m *guardModel) racedWrite(p int) {
	s := m.peers[p]
	if s.IsDestroyed() || s.Created.IsZero() {
		return
	}
	read := s.Clone()
	for i, msg := range m.queue {
		if msg.to == p {
			m.deliver(i, false)
			break
		}
	}
	ts := m.stamp(p)
	m.writes++
	var d *Session
	if read.Covered() {
		d = read.Header()
		d.Guard = &Guard{Need: read.Version()}
	} else {
		d = read.Clone()
		d.Guard = &Guard{}
	}
	key := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(m.t, "racekey")
	d.Fields = d.Fields.With(key, Field{Value: "r" + string(rune('0'+m.writes%10)), TS: ts})
	k, f := VersionField(ts)
	d.Fields = d.Fields.With(k, f)
	cur := m.peers[p]
	mustMerge(m.t, cur, d)
	if cur.IsDestroyed() {
		return
	}
	promised := read.Clone()
	mustMerge(m.t, promised, d)
	m.held[VersionEntry{Node: ts.Node, Time: ts.Time}] = promised.Fields
	for q := range m.peers {
		if q != p {
			m.queue = append(m.queue, message{q, d})
		}
	}
}

// reorderJoin joins message j into i in the other order (j first), as a
// receiver's parked or deferred batch may.
func (m *guardModel) reorderJoin(i, j int) {
	if i == j || m.queue[i].to != m.queue[j].to {
		return
	}
	b := NewBatch(m.queue[j].d, m.queue[i].d)
	m.queue[i].d = b.Get(genID)
	m.queue = slices.Delete(m.queue, j, j+1)
}

// TestGuardedDeltasReview runs the guard model with what the node adds on
// top of plain writes: large sessions' entry-less gossip, fetch answers
// (whole when covered), destroys, and joins in either order, checking the
// version invariant after every step. More seeds: -rapid.checks=N.
func TestGuardedDeltasReview(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "peers")
		m := newGuardModel(t, n)
		peer := rapid.IntRange(0, n-1)
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 16).Draw(t, "op") {
			case 0, 1, 2:
				m.write(peer.Draw(t, "writer"), true)
			case 3:
				m.write(peer.Draw(t, "writer"), false)
			case 4:
				m.bigWrite(peer.Draw(t, "writer"))
			case 5, 6, 7, 8:
				if len(m.queue) > 0 {
					m.deliver(rapid.IntRange(0, len(m.queue)-1).Draw(t, "msg"), rapid.IntRange(0, 5).Draw(t, "dup") == 0)
				}
			case 9:
				if len(m.queue) > 0 {
					i := rapid.IntRange(0, len(m.queue)-1).Draw(t, "lost")
					m.queue = slices.Delete(m.queue, i, i+1)
				}
			case 10:
				if len(m.queue) > 1 {
					m.joinQueued(rapid.IntRange(0, len(m.queue)-1).Draw(t, "i"), rapid.IntRange(0, len(m.queue)-1).Draw(t, "j"))
				}
			case 11:
				if len(m.queue) > 1 {
					m.reorderJoin(rapid.IntRange(0, len(m.queue)-1).Draw(t, "i"), rapid.IntRange(0, len(m.queue)-1).Draw(t, "j"))
				}
			case 12:
				p, q := peer.Draw(t, "from"), peer.Draw(t, "to")
				if p != q {
					m.antiEntropy(p, q)
				}
			case 13:
				p, q := peer.Draw(t, "asker"), peer.Draw(t, "answerer")
				if p != q {
					m.fetchAnswer(q, p)
				}
			case 14:
				m.restart(peer.Draw(t, "restart"))
			case 15:
				if rapid.IntRange(0, 5).Draw(t, "destroy") == 0 {
					m.destroy(peer.Draw(t, "destroyer"))
				}
			case 16:
				if len(m.queue) > 0 {
					m.racedWrite(peer.Draw(t, "writer"))
				}
			}
			m.check()
		}
	})
}
