package node

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestReviewPooledDecodersShareNothing: what decodeMsg decodes (strings,
// byte slices, slices of ints) stays as it was while the pooled decoder
// that produced it decodes other messages, on this goroutine and on
// others, including messages that fail halfway and ones with trailing
// bytes; and the digests message decoded into a caller's buffer lands in
// that buffer, whatever the pool holds.
func TestReviewPooledDecodersShareNothing(t *testing.T) {
	entries := func(i int) entriesMsg {
		return entriesMsg{Round: uint64(i), FromInitiator: i%2 == 0, Seq: uint32(i), Payload: uint8(i),
			Buckets: []int{i, i + 1, i + 2}, After: strings.Repeat(fmt.Sprint(i%10), 40+i%50), Upto: fmt.Sprintf("upto-%d", i)}
	}
	fetch := func(i int) fetchMsg {
		return fetchMsg{ID: fmt.Sprintf("session-%d", i), Batch: bytes.Repeat([]byte{byte(i)}, 100+i%300)}
	}
	enc := func(kind byte, v any) []byte {
		b, err := encodeMsg(kind, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var keptE []entriesMsg
			var keptF []fetchMsg
			for i := g * 1000; i < g*1000+300; i++ {
				var e entriesMsg
				if err := decodeMsg(enc(kindEntries, entries(i)), &e); err != nil {
					t.Errorf("decode entries %d: %v", i, err)
					return
				}
				var f fetchMsg
				if err := decodeMsg(enc(kindFetch, fetch(i)), &f); err != nil {
					t.Errorf("decode fetch %d: %v", i, err)
					return
				}
				keptE, keptF = append(keptE, e), append(keptF, f)
				// A message cut short, and one with a trailing byte: errors,
				// and the pooled decoder serves again.
				full := enc(kindFetch, fetch(i+7))
				var bad fetchMsg
				if err := decodeMsg(full[:len(full)-5], &bad); err == nil {
					t.Errorf("a truncated message decoded")
					return
				}
				if err := decodeMsg(append(full, 0xc0), &bad); err == nil {
					t.Errorf("a message with a trailing byte decoded")
					return
				}
			}
			for k, e := range keptE {
				i := g*1000 + k
				if !reflect.DeepEqual(e, entries(i)) || !reflect.DeepEqual(keptF[k], fetch(i)) {
					t.Errorf("message %d changed after its decoder served others", i)
					return
				}
			}
		})
	}
	wg.Wait()

	// Digests decode into the buffer given, at its size.
	buf := make([]byte, 0, 64)
	in := digestsMsg{Round: 3, SentAt: 4, Buckets: bytes.Repeat([]byte{7}, 64)}
	m := digestsMsg{Buckets: buf}
	if err := decodeMsg(enc(kindDigests, &in), &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, in) || &m.Buckets[0] != &buf[:1][0] {
		t.Fatalf("digests decoded as %v, into the buffer given: %v", m, &m.Buckets[0] == &buf[:1][0])
	}
}
