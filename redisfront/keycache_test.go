package redisfront

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessionmesh/sessionmesh/node"
)

// The key cache answers what keyToken and node.KeyOf compute, for every
// generation, for names that share a slot (a cache of 3 slots, so most
// do) and for names too long to be cached.
func TestKeyCache(t *testing.T) {
	c := &keyCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cachedKey], 3)}
	names := []string{"", "a", strings.Repeat("x", keyCacheMaxName), strings.Repeat("y", keyCacheMaxName+1)}
	for i := range 40 {
		names = append(names, fmt.Sprintf("sess:%d", i))
	}
	for round := range 3 {
		for _, name := range names {
			for _, gen := range []int{0, 1, 5} {
				want, ok := node.KeyOf(keyToken([]byte(name), gen))
				if !ok {
					t.Fatalf("keyToken(%q, %d) is not a token", name, gen)
				}
				if got := c.of([]byte(name), gen); got != want {
					t.Fatalf("round %d: of(%q, %d) = %q, want %q", round, name, gen, got.Token(), want.Token())
				}
			}
		}
	}
}
