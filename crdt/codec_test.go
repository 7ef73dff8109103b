package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

func sampleSession(fields, valueBytes int) *Session {
	now := genBase
	s := Create("7f2a9c1e5b3d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(24*time.Hour), 30*time.Minute)
	for i := range fields {
		_, _ = s.Merge(s.Set(fmt.Sprintf("field-%02d", i), bytes.Repeat([]byte{byte('a' + i)}, valueBytes), NewTimestamp(now.UnixMilli()+int64(i), 0, 1)))
	}
	return s
}

func TestSessionRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "s")
		b := encode(t, s)
		got, err := UnmarshalSession(b, DefaultLimits())
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if again := encode(t, got); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed bytes")
		}
	})
}

func TestBatchRoundTrip(t *testing.T) {
	b := NewBatch()
	for i := range 50 {
		s := sampleSession(3, 10)
		s.ID = fmt.Sprintf("id-%03d", i)
		b.Add(s)
	}
	b.Add(Tombstone("gone", NewTimestamp(genBase.UnixMilli(), 0, 2), genBase.Add(time.Hour)))
	data, err := MarshalBatch(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalBatch(data, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 51 {
		t.Fatalf("decoded %d sessions", got.Len())
	}
	again, _ := MarshalBatch(got, DefaultLimits())
	if !bytes.Equal(again, data) {
		t.Fatal("batch round trip changed bytes")
	}
}

func TestDecodeRejects(t *testing.T) {
	l := DefaultLimits()
	valid := encode(t, sampleSession(2, 4))
	small := l
	small.MaxValueBytes = 3
	small.MaxFields = 1
	// A session whose id claims 4 GiB: must fail on the bound, not allocate.
	huge := append([]byte{FormatVersion, kindSession, 0x99, 0xdb}, 0xff, 0xff, 0xff, 0xff)
	nonMinimal := rawSession(t, func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(9)
		_ = e.EncodeString("id")
		_ = e.EncodeUint64(5) // 5 in 9 bytes
	})
	outOfOrder := rawSession(t, func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(9)
		_ = e.EncodeString("id")
		for _, v := range []uint64{1 << 20, 1, 1 << 30, 1000, 5, 0, 0} {
			_ = e.EncodeUint(v)
		}
		_ = e.EncodeMapLen(2)
		for _, k := range []string{"b", "a"} {
			_ = e.EncodeString(k)
			_ = e.EncodeArrayLen(3)
			_ = e.EncodeUint(1 << 20)
			_ = e.EncodeUint(1)
			_ = e.EncodeBytes([]byte("v"))
		}
	})
	tombWithFields := rawSession(t, func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(9)
		_ = e.EncodeString("id")
		for _, v := range []uint64{0, 0, 1 << 30, 0, 0, 1 << 20, 1} {
			_ = e.EncodeUint(v)
		}
		_ = e.EncodeMapLen(1)
		_ = e.EncodeString("a")
		_ = e.EncodeArrayLen(3)
		_ = e.EncodeUint(1 << 20)
		_ = e.EncodeUint(1)
		_ = e.EncodeBytes([]byte("v"))
	})
	cases := []struct {
		name   string
		data   []byte
		limits Limits
		want   error
	}{
		{"empty", nil, l, ErrMalformed},
		{"version", append([]byte{9}, valid[1:]...), l, ErrVersion},
		{"kind", append([]byte{FormatVersion, kindBatch}, valid[2:]...), l, ErrMalformed},
		{"trailing", append(bytes.Clone(valid), 0), l, ErrMalformed},
		{"value over limit", valid, small, ErrTooLarge},
		{"huge length prefix", huge, l, ErrTooLarge},
		{"non-minimal integer", nonMinimal, l, ErrMalformed},
		{"keys out of order", outOfOrder, l, ErrMalformed},
		{"tombstone with fields", tombWithFields, l, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := UnmarshalSession(c.data, c.limits)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Every truncation of a valid encoding is an error, never a panic.
	for i := range len(valid) {
		if _, err := UnmarshalSession(valid[:i], l); err == nil {
			t.Fatalf("truncated to %d bytes decoded without error", i)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	l := DefaultLimits()
	l.MaxBatchSessions = 2
	b := NewBatch()
	for i := range 3 {
		s := sampleSession(1, 1)
		s.ID = fmt.Sprintf("%d", i)
		b.Add(s)
	}
	if _, err := MarshalBatch(b, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("marshal over MaxBatchSessions: %v", err)
	}
	data, err := MarshalBatch(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalBatch(data, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unmarshal over MaxBatchSessions: %v", err)
	}
	l = DefaultLimits()
	l.MaxBatchBytes = len(data) - 1
	if _, err := UnmarshalBatch(data, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unmarshal over MaxBatchBytes: %v", err)
	}
	if _, err := MarshalBatch(b, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("marshal over MaxBatchBytes: %v", err)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	for name, s := range map[string]*Session{
		"empty id":      {Absolute: 1, Created: NewTimestamp(1, 0, 1), Idle: 1},
		"no deadline":   {ID: "x", Created: NewTimestamp(1, 0, 1), Idle: 1},
		"no create":     {ID: "x", Absolute: 10, Idle: 1},
		"removed value": {ID: "x", Absolute: 10, Idle: 1, Created: NewTimestamp(1, 0, 1), Fields: FieldsOf(map[string]Field{"k": {Removed: true, Value: "v", TS: NewTimestamp(1, 0, 1)}})},
	} {
		if _, err := MarshalSession(s, DefaultLimits()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func rawSession(t *testing.T, body func(*msgpack.Encoder)) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write([]byte{FormatVersion, kindSession})
	body(msgpack.NewEncoder(&buf))
	return buf.Bytes()
}

func TestLifetimeAndSessionSizeBounds(t *testing.T) {
	l := DefaultLimits()
	now := genBase
	immortal := Create("x", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(l.MaxLifetime+time.Hour), time.Minute)
	if _, err := MarshalSession(immortal, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("deadline beyond MaxLifetime: %v", err)
	}
	farTomb := Tombstone("y", NewTimestamp(now.UnixMilli(), 0, 1), now.Add(l.MaxLifetime+time.Hour))
	if _, err := MarshalSession(farTomb, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("tombstone deadline beyond MaxLifetime: %v", err)
	}
	big := sampleSession(20, 1000)
	l.MaxSessionBytes = 10_000
	if _, err := MarshalSession(big, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("session over MaxSessionBytes: %v", err)
	}
	data, err := MarshalSession(big, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSession(data, l); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoding over MaxSessionBytes: %v", err)
	}
	bad := DefaultLimits()
	bad.MaxSessionBytes = bad.MaxBatchBytes
	if err := bad.Validate(); err == nil {
		t.Fatal("MaxSessionBytes above half a batch accepted")
	}
}

// A batch's count is only a claim: the slice and map for its sessions are
// sized by what the bytes left can hold. Five bytes declaring 4096
// sessions allocated 250 KB; minSessionBytes is no more than the smallest
// session encodes to, so a real batch still gets its room at once.
func TestUnmarshalBatchSizedByItsBytes(t *testing.T) {
	l := DefaultLimits()
	in := []byte{FormatVersion, 'b', 0xdc, 0x10, 0x00} // array of 4096, nothing after
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 16 {
		if _, err := UnmarshalBatch(in, l); err == nil {
			t.Fatal("a batch of nothing declaring 4096 sessions decoded")
		}
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / 16; per > 8<<10 {
		t.Errorf("refusing it allocated %d bytes", per)
	}

	var ss []*Session
	for i := range 3 {
		ss = append(ss, &Session{ID: string(rune('a' + i)), Absolute: 10, Idle: 1, Created: NewTimestamp(1, 0, 1)})
	}
	data, err := MarshalBatch(NewBatch(ss...), l)
	if err != nil {
		t.Fatal(err)
	}
	one, err := MarshalBatch(NewBatch(ss[0]), l)
	if err != nil {
		t.Fatal(err)
	}
	if per := (len(data) - len(one)) / 2; per < minSessionBytes {
		t.Fatalf("a minimal session encodes to %d bytes, under minSessionBytes %d", per, minSessionBytes)
	}
	b, err := UnmarshalBatch(data, l)
	if err != nil || b.Len() != 3 || cap(b.sorted) != 3 {
		t.Fatalf("minimal sessions: %v, %d back, room for %d", err, b.Len(), cap(b.sorted))
	}
}
