package node

import (
	"encoding/base64"
	"testing"
)

// The last characters of a token carry its padding bits; every pair of
// byte values at the last two positions (and at the first two) decodes
// exactly as encoding/base64 Strict does, and KeyOf agrees with SessionID.
func TestReviewTokenCodecPairs(t *testing.T) {
	strict := base64.RawURLEncoding.Strict()
	base := []byte("q0G7mN4_xZ-2aB9cD8eF7gH6iJ5kL4mN3oP2qR1sT0u")
	if len(base) != tokenLen {
		t.Fatal(len(base))
	}
	for _, pos := range [][2]int{{41, 42}, {40, 42}, {0, 1}} {
		tok := append([]byte(nil), base...)
		for a := range 256 {
			for b := range 256 {
				tok[pos[0]], tok[pos[1]] = byte(a), byte(b)
				s := string(tok)
				var raw [tokenBytes]byte
				ok := decodeToken(&raw, s)
				want, err := strict.DecodeString(s)
				wantOK := err == nil && len(want) == tokenBytes
				if ok != wantOK || ok && string(raw[:]) != string(want) {
					t.Fatalf("decodeToken(%q) = %v, encoding/base64 Strict: %v %v", s, ok, len(want), err)
				}
				id, idOK := SessionID(s)
				k, kOK := KeyOf(s)
				if idOK != ok || kOK != ok {
					t.Fatalf("%q: decodeToken %v, SessionID %v, KeyOf %v", s, ok, idOK, kOK)
				}
				if ok && (k.Token() != s || k.id != id) {
					t.Fatalf("%q: KeyOf = %q/%q, SessionID %q", s, k.Token(), k.id, id)
				}
			}
		}
	}
}
