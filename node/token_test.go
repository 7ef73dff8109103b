package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// TestTokenCodec holds the unrolled token and id codecs to encoding/base64:
// random tokens, and every one-byte change of one (every byte value at
// every position), decode as base64.RawURLEncoding.Strict does, and ids
// encode as base64.RawURLEncoding does.
func TestTokenCodec(t *testing.T) {
	strict := base64.RawURLEncoding.Strict()
	r := rand.New(rand.NewPCG(1, 2))
	check := func(token string) {
		t.Helper()
		var raw [tokenBytes]byte
		ok := decodeToken(&raw, token)
		want, err := strict.DecodeString(token)
		wantOK := err == nil && len(want) == tokenBytes && len(token) == tokenLen
		if ok != wantOK || ok && !bytes.Equal(raw[:], want) {
			t.Fatalf("decodeToken(%q) = %x, %v; encoding/base64: %x, %v", token, raw, ok, want, err)
		}
		if !ok {
			return
		}
		sum := sha256.Sum256(raw[:])
		var id [idLen]byte
		encodeID(&id, &sum)
		if w := base64.RawURLEncoding.EncodeToString(sum[:]); string(id[:]) != w {
			t.Fatalf("encodeID(%x) = %s, want %s", sum, id, w)
		}
		if got, _ := SessionID(token); got != string(id[:]) {
			t.Fatalf("SessionID(%q) = %s, want %s", token, got, id)
		}
	}
	for range 200 {
		var b [tokenBytes]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		check(base64.RawURLEncoding.EncodeToString(b[:]))
	}
	var b [tokenBytes]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	token := []byte(base64.RawURLEncoding.EncodeToString(b[:]))
	for pos := range token {
		orig := token[pos]
		for c := range 256 {
			token[pos] = byte(c)
			check(string(token))
		}
		token[pos] = orig
	}
	for _, s := range []string{"", "A", string(token[:42]), string(token) + "A", string(token[:42]) + "\n", string(token[:41]) + "\r\n"} {
		check(s)
	}
}
