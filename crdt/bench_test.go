package crdt

import (
	"fmt"
	"testing"
	"time"
)

// A typical web session: 10 fields of ~90 bytes, about 1 KiB encoded.

func BenchmarkMergeFieldDelta(b *testing.B) {
	s := sampleSession(10, 90)
	d := s.Set("field-03", make([]byte, 90), NewTimestamp(genBase.UnixMilli()+100, 0, 2))
	b.ReportAllocs()
	for b.Loop() {
		c := s.Clone()
		if _, err := c.Merge(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMergeFullState(b *testing.B) {
	s := sampleSession(10, 90)
	o := sampleSession(10, 90)
	for k, f := range o.Fields.All() {
		f.TS.Time++
		o.Fields = o.Fields.With(k, f)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := s.Clone()
		if _, err := c.Merge(o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalSession(b *testing.B) {
	s := sampleSession(10, 90)
	data, _ := MarshalSession(s, DefaultLimits())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalSession(s, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalSession(b *testing.B) {
	data, _ := MarshalSession(sampleSession(10, 90), DefaultLimits())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalSession(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBatch(n int) *Batch {
	batch := NewBatch()
	base := sampleSession(10, 90)
	for i := range n {
		d := base.Set("field-01", []byte("value"), NewTimestamp(genBase.UnixMilli()+int64(i), 0, 1))
		d.ID = fmt.Sprintf("session-%06d", i)
		batch.Add(d)
	}
	return batch
}

func BenchmarkMarshalBatch100(b *testing.B) {
	batch := benchBatch(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalBatch(batch, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalBatch100(b *testing.B) {
	data, _ := MarshalBatch(benchBatch(100), DefaultLimits())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalBatch(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalGuardedBatch100 decodes what a node broadcasts for
// versioned writes: change-only deltas, each guarded by the version it was
// written on.
func BenchmarkUnmarshalGuardedBatch100(b *testing.B) {
	batch := benchBatch(100)
	for _, s := range batch.Sessions() {
		s.Guard = &Guard{Need: Version{{Node: 1, Time: 1 << 20}, {Node: 2, Time: 1 << 21}}}
	}
	data, err := MarshalBatch(batch, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalBatch(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClockNow(b *testing.B) {
	c := NewClock(1, time.Second)
	now := genBase
	for b.Loop() {
		c.Now(now)
	}
}

// BenchmarkMergeWriteStream merges a stream of one-field writes, each with
// a second register that every write rewrites (as a versioned write does
// its writer's version entry), into sessions of 10 and 200 fields: the
// replication lag benchmarks' shape, whose garbage per write is the lag
// tail's lever.
func BenchmarkMergeWriteStream(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			s := sampleSession(n, 1)
			ds := make([]*Session, 4096)
			at := genBase.UnixMilli() + 100
			fill := func() {
				for i := range ds {
					at++
					ts := NewTimestamp(at, 0, 2)
					d := s.Header().Set(fmt.Sprintf("field-%02d", int(at)%n), []byte("v"), ts)
					d.Fields = d.Fields.With("~v", Field{Value: "vv", TS: ts})
					ds[i] = d
				}
			}
			fill()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(ds) {
					b.StopTimer()
					fill()
					i = 0
					b.StartTimer()
				}
				ch, err := s.Merge(ds[i])
				if err != nil || len(ch.Fields) != 2 {
					b.Fatal(ch, err)
				}
				i++
			}
		})
	}
}
