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

// queue is a binary min-heap of events ordered by (at, seq). The heap
// holds the times only, with the index of what is due in todo: sifting
// moves no pointers (every pointer a sift moved while the collector marks
// took a write barrier), and the collector never scans the heap.
type queue struct {
	h    []due
	todo []work
	free []int32 // unused entries of todo
	seq  uint64
}

type due struct {
	at  int64
	seq uint64
	i   int32 // in todo
}

type work struct {
	fn func()
	m  *message
}

func (q *queue) len() int { return len(q.h) }

func (q *queue) push(at int64, fn func()) { q.add(event{at: at, fn: fn}) }

// add schedules ev (with its at and fn or m set).
func (q *queue) add(ev event) {
	q.seq++
	var i int32
	if n := len(q.free); n > 0 {
		i = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		i = int32(len(q.todo))
		q.todo = append(q.todo, work{})
	}
	q.todo[i] = work{ev.fn, ev.m}
	d := due{at: ev.at, seq: q.seq, i: i}
	q.h = append(q.h, d)
	// Sift up moving parents into the hole rather than swapping.
	k := len(q.h) - 1
	for k > 0 {
		p := (k - 1) / 2
		if !before(&d, &q.h[p]) {
			break
		}
		q.h[k] = q.h[p]
		k = p
	}
	q.h[k] = d
}

// before orders events by (at, seq).
func before(a, b *due) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// nextAt is when the next event is due.
func (q *queue) nextAt() int64 { return q.h[0].at }

func (q *queue) pop() event {
	top := q.h[0]
	w := q.todo[top.i]
	q.todo[top.i] = work{}
	q.free = append(q.free, top.i)
	last := len(q.h) - 1
	d := q.h[last]
	q.h = q.h[:last]
	if last > 0 {
		// Sift the last event down from the root, moving the smaller
		// child into the hole at each level.
		k := 0
		for {
			m := 2*k + 1
			if m >= last {
				break
			}
			if r := m + 1; r < last && before(&q.h[r], &q.h[m]) {
				m = r
			}
			if !before(&q.h[m], &d) {
				break
			}
			q.h[k] = q.h[m]
			k = m
		}
		q.h[k] = d
	}
	return event{at: top.at, seq: top.seq, fn: w.fn, m: w.m}
}
