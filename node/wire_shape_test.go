package node

import (
	"errors"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// A message declaring more than it holds is refused before anything is
// sized by its declarations. The first case is what FuzzReceiveDirect
// found: 20 bytes of entries whose buckets claimed two billion values, for
// which the decoder allocated 16 GB (msgpack/v5 ignores its own limit) and
// took minutes.
func TestDecodeRefusesLengthsBeyondTheMessage(t *testing.T) {
	cases := map[string][]byte{
		"fuzz: array32 of 2e9 buckets":     []byte("\x02E\x980\xc20\x7f\xddz\xa5d\xf6\xcc0\xc0\xc60\xff\xff0"),
		"array32 of 2^32-1":                {wireVersion, kindEntries, 0x98, 1, 0xc2, 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"array16 beyond the end":           {wireVersion, kindEntries, 0x98, 1, 0xc2, 1, 1, 0xdc, 0x10, 0x00, 1, 2},
		"map32 of 2^31":                    {wireVersion, kindEntries, 0x98, 1, 0xc2, 1, 1, 0xdf, 0x80, 0, 0, 0, 1},
		"bin32 of 4 GB":                    {wireVersion, kindFetched, 0x92, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff, 0},
		"str16 beyond the end":             {wireVersion, kindAbort, 0x92, 1, 0xda, 0x01, 0x00, 'x'},
		"ext32 beyond the end":             {wireVersion, kindAbort, 0xc9, 0, 0, 1, 0, 5, 1},
		"truncated length":                 {wireVersion, kindEntries, 0xdd, 0x00},
		"unknown code":                     {wireVersion, kindAbort, 0xc1},
		"trailing bytes after a value":     {wireVersion, kindAbort, 0x90, 0x90},
		"arrays nested 100 deep":           append([]byte{wireVersion, kindAbort}, nested(100)...),
		"empty body":                       {wireVersion, kindAbort},
		"a map of pairs cut in the middle": {wireVersion, kindAbort, 0x82, 1, 2, 3},
	}
	for name, data := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var m entriesMsg
		err := decodeMsg(data, &m)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: refusing it allocated %d bytes", name, grew)
		}
	}
}

// nested returns n fixarrays of one, each holding the next, around a nil.
func nested(n int) []byte {
	b := make([]byte, n, n+1)
	for i := range b {
		b[i] = 0x91
	}
	return append(b, 0xc0)
}

// Every message our encoder writes has a shape checkShape accepts, and
// every strict prefix of it is refused.
func TestCheckShapeAcceptsWhatWeEncode(t *testing.T) {
	values := []any{
		&rootMsg{Round: 1, Root: 1 << 60},
		&entriesMsg{Round: 3, FromInitiator: true, Seq: 70000, Payload: payloadSummary, Buckets: []int{0, 9, 4095, 1 << 20}, After: "a", Upto: string(make([]byte, 300)), Batch: make([]byte, 70000)},
		&planMsg{Round: 1, Full: newBucketSet(), Summary: newBucketSet()},
		&abortMsg{Round: 1, Reason: "x"},
		map[string]any{"k": []any{1.5, float32(2), int64(-1 << 40), -3, nil, true, map[string]int{"a": 1}}},
		msgpack.RawMessage{0xd4, 1, 2},                                              // fixext1
		msgpack.RawMessage{0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // fixext16
		msgpack.RawMessage{0xc7, 2, 9, 1, 2},                                        // ext8
	}
	for _, v := range values {
		data, err := encodeMsg(kindAbort, v)
		if err != nil {
			t.Fatal(err)
		}
		body := data[2:]
		if err := checkShape(body, maxMsgDepth); err != nil {
			t.Errorf("%T %x: %v", v, body[:min(len(body), 32)], err)
		}
		for i := range body {
			if checkShape(body[:i], maxMsgDepth) == nil {
				t.Errorf("%T: the prefix of %d of %d bytes passes", v, i, len(body))
				break
			}
		}
	}
}
