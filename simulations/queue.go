package simulations

// event is something due at a true time: fn to run, or, for the most
// common event by far, m to deliver (without a closure to allocate). Events
// at the same time run in the order they were scheduled (seq), so ties
// never depend on the heap.
type event struct {
	at  int64
	seq uint64
	fn  func()
	m   *message
}

// queue is a binary min-heap of events ordered by (at, seq).
type queue struct {
	h   []event
	seq uint64
}

func (q *queue) len() int { return len(q.h) }

func (q *queue) push(at int64, fn func()) { q.add(event{at: at, fn: fn}) }

// add schedules ev (with its at and fn or m set).
func (q *queue) add(ev event) {
	q.seq++
	ev.seq = q.seq
	q.h = append(q.h, ev)
	// Sift up moving parents into the hole rather than swapping: half the
	// writes (of two pointers each) per level.
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !before(&ev, &q.h[p]) {
			break
		}
		q.h[i] = q.h[p]
		i = p
	}
	q.h[i] = ev
}

// before orders events by (at, seq).
func before(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (q *queue) peek() *event { return &q.h[0] }

func (q *queue) pop() event {
	top := q.h[0]
	last := len(q.h) - 1
	ev := q.h[last]
	q.h[last] = event{}
	q.h = q.h[:last]
	if last == 0 {
		return top
	}
	// Sift the last event down from the root, moving the smaller child
	// into the hole at each level.
	i := 0
	for {
		m := 2*i + 1
		if m >= last {
			break
		}
		if r := m + 1; r < last && before(&q.h[r], &q.h[m]) {
			m = r
		}
		if !before(&q.h[m], &ev) {
			break
		}
		q.h[i] = q.h[m]
		i = m
	}
	q.h[i] = ev
	return top
}
