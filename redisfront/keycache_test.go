package redisfront

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
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

// Goroutines sharing the cache's slots (3 for 16 names, so they evict each
// other's entries all along) each get the Key of the name they ask for.
func TestKeyCacheConcurrent(t *testing.T) {
	c := &keyCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cachedKey], 3)}
	want := make(map[string]node.Key)
	for i := range 16 {
		name := fmt.Sprintf("sess:%d", i)
		want[name], _ = node.KeyOf(keyToken([]byte(name), 0))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				name := fmt.Sprintf("sess:%d", (i*7+g)%16)
				if got := c.of([]byte(name), 0); got != want[name] {
					errs <- fmt.Sprintf("of(%q) = %q, want %q", name, got.Token(), want[name].Token())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
