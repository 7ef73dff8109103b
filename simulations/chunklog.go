package simulations

import (
	"encoding/json"
	"io"
	"slices"
	"time"
)

// chunkLog is an append-only log kept in fixed chunks. A run records an
// entry per client operation (the trace, the checkers' writes), hundreds of
// thousands, which a growing slice would copy again and again: by a
// quarter at a time once large, about five times its final size in all.
// Entries without pointers keep the log out of the garbage collector's
// scans.
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
func (l *chunkLog[T]) at(i int) *T { return &l.chunks[uint(i)/chunkLen][uint(i)%chunkLen] }

func (l *chunkLog[T]) len() int { return l.n }

// frozen returns the log as it is now, for a goroutine to read while this
// one goes on adding: its own copy of the chunk list, whose entries adds
// never touch again (they write past them, or to new chunks).
func (l *chunkLog[T]) frozen() chunkLog[T] {
	return chunkLog[T]{chunks: slices.Clone(l.chunks), n: l.n}
}

// from calls fn with every entry from index i on, in order.
func (l *chunkLog[T]) from(i int, fn func(*T)) {
	for k := i / chunkLen; k < len(l.chunks); k++ {
		c := l.chunks[k]
		j := 0
		if k == i/chunkLen {
			j = i % chunkLen
		}
		for ; j < len(c); j++ {
			fn(&c[j])
		}
	}
}

// all returns the entries in one slice of their own.
func (l *chunkLog[T]) all() []T {
	if l.n == 0 {
		return nil
	}
	out := make([]T, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

// traceLog is the run's trace, kept compact. Its strings repeat (kinds,
// node names, results, session ids): interned, a record holds no pointer,
// so the garbage collector never scans the log (as TraceEvents, a fifth of
// what a steady hour keeps).
type traceLog struct {
	recs  chunkLog[traceRec]
	strs  []string // strs[0] is ""
	index map[string]int32
	// seen remembers recent strings and their indexes: nearly every
	// string a record takes (a node's name, an operation, a session's
	// id) is one of a few hundred. Six map lookups an operation cost a
	// steady hour 2%.
	seen *recent[int32]
}

// recent remembers the values of the strings last looked up, in front of
// a map, each in a slot chosen by a hash of three of its bytes: strings
// looked up again and again (node names, session ids) are then found
// without hashing them whole, usually as the very string (== tells from
// the pointer).
type recent[V any] [recentSlots]recentSlot[V]

type recentSlot[V any] struct {
	s string
	v V
}

const recentSlots = 1024

// slot returns where s (not "") is remembered, if it is.
func (r *recent[V]) slot(s string) *recentSlot[V] {
	h := uint(len(s))*0x9e3779b1 ^ uint(s[0]) ^ uint(s[len(s)/2])<<6 ^ uint(s[len(s)-1])<<12
	return &r[(h^h>>10)%recentSlots]
}

// get returns the value remembered for s.
func (r *recent[V]) get(s string) (V, bool) {
	if s != "" {
		if e := r.slot(s); e.s == s {
			return e.v, true
		}
	}
	var zero V
	return zero, false
}

// put remembers v for s (not "").
func (r *recent[V]) put(s string, v V) {
	e := r.slot(s)
	e.s, e.v = s, v
}

// traceRec is a TraceEvent with its strings as indexes in traceLog.strs,
// in field order: Kind, Node, Peer, Op, Session, Key, Result, Fault,
// Detail.
type traceRec struct {
	t Duration
	s [9]int32
}

func (l *traceLog) intern(s string) int32 {
	if s == "" {
		return 0
	}
	if i, ok := l.seen.get(s); ok {
		return i
	}
	i, ok := l.index[s]
	if !ok {
		i = int32(len(l.strs))
		l.strs = append(l.strs, s)
		l.index[s] = i
	}
	l.seen.put(s, i)
	return i
}

func (l *traceLog) add(ev TraceEvent) {
	if l.index == nil {
		l.index = map[string]int32{}
		l.strs = []string{""}
		l.seen = new(recent[int32])
	}
	l.recs.add(traceRec{t: ev.T, s: [9]int32{
		l.intern(ev.Kind), l.intern(ev.Node), l.intern(ev.Peer), l.intern(ev.Op), l.intern(ev.Session),
		l.intern(ev.Key), l.intern(ev.Result), l.intern(ev.Fault), l.intern(ev.Detail),
	}})
}

func (l *traceLog) event(r *traceRec) TraceEvent {
	s := func(i int) string { return l.strs[r.s[i]] }
	return TraceEvent{T: r.t, Kind: s(0), Node: s(1), Peer: s(2), Op: s(3), Session: s(4), Key: s(5), Result: s(6), Fault: s(7), Detail: s(8)}
}

func (l *traceLog) len() int { return l.recs.len() }

// frozen returns the trace as it is now, for a goroutine to read (all,
// encode) while this one goes on adding: the strings interned so far
// never change either.
func (l *traceLog) frozen() traceLog {
	return traceLog{recs: l.recs.frozen(), strs: l.strs[:len(l.strs):len(l.strs)]}
}

// all returns the trace.
func (l *traceLog) all() []TraceEvent { return l.appendFrom(make([]TraceEvent, 0, l.len()), 0) }

// appendFrom appends the events from index i on to out.
func (l *traceLog) appendFrom(out []TraceEvent, i int) []TraceEvent {
	l.recs.from(i, func(r *traceRec) { out = append(out, l.event(r)) })
	return out
}

// traceFields are TraceEvent's JSON names, in traceRec order.
var traceFields = [9]string{"kind", "node", "peer", "op", "session", "key", "result", "fault", "detail"}

// encode writes the events from index from on, but those of kind skip, to
// w byte for byte as encoding/json's Encoder writes TraceEvents (one
// object a line, "t" and "kind" always, the others when set, HTML-safe
// strings): the form the fingerprint has always hashed, without
// reflection, each string quoted once. Encoding a log in two parts writes
// what encoding it whole does.
func (l *traceLog) encode(w io.Writer, from int, skip string) {
	skipped := int32(-1)
	if skip != "" {
		// Read from strs, not index: a frozen log has none.
		skipped = int32(slices.Index(l.strs, skip))
	}
	quoted := make([][]byte, len(l.strs))
	q := func(i int32) []byte {
		if quoted[i] == nil {
			quoted[i] = jsonString(l.strs[i])
		}
		return quoted[i]
	}
	var buf []byte
	l.recs.from(from, func(r *traceRec) {
		if r.s[0] == skipped {
			return
		}
		buf = append(buf, `{"t":"`...)
		// Digits, '.', '-' and unit letters ("µ" included) need no
		// escaping; the string stays on the stack.
		buf = append(buf, time.Duration(r.t).String()...)
		buf = append(buf, '"')
		buf = append(buf, `,"kind":`...)
		buf = append(buf, q(r.s[0])...)
		for f := 1; f < len(r.s); f++ {
			if r.s[f] != 0 {
				buf = append(buf, ',', '"')
				buf = append(buf, traceFields[f]...)
				buf = append(buf, '"', ':')
				buf = append(buf, q(r.s[f])...)
			}
		}
		buf = append(buf, '}', '\n')
		if len(buf) >= 64<<10 {
			_, _ = w.Write(buf)
			buf = buf[:0]
		}
	})
	_, _ = w.Write(buf)
}

// jsonString quotes s as encoding/json does, HTML escaping included.
func jsonString(s string) []byte { return appendJSONString(nil, s) }

// appendJSONString appends jsonString(s) to b.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}
