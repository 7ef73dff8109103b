package simulations

// chunkLog is an append-only log kept in fixed chunks. A run records an
// entry per client operation (the trace, the checkers' writes), hundreds of
// thousands, which a growing slice would copy again and again: by a
// quarter at a time once large, about five times its final size in all.
type chunkLog[T any] struct {
	chunks [][]T
	n      int
}

const chunkLen = 4096

// add appends v and returns its index.
func (l *chunkLog[T]) add(v T) int {
	if l.n%chunkLen == 0 {
		l.chunks = append(l.chunks, make([]T, 0, chunkLen))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, v)
	l.n++
	return l.n - 1
}

// at returns entry i, which stays where it is.
func (l *chunkLog[T]) at(i int) *T { return &l.chunks[i/chunkLen][i%chunkLen] }

func (l *chunkLog[T]) len() int { return l.n }

// all returns a copy of the log as one slice.
func (l *chunkLog[T]) all() []T {
	out := make([]T, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}
