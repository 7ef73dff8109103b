package crdt

import (
	"fmt"
	"math"
	"testing"
)

// TestVersionKeySpelling: the key is the prefix and the node in 16
// lower-case hex digits, whatever the cache of the last key holds.
func TestVersionKeySpelling(t *testing.T) {
	for _, n := range []NodeID{0, 1, 0xabcdef, 0x1234567890abcdef, math.MaxUint64, 1, 1} {
		want := VersionKeyPrefix + fmt.Sprintf("%016x", uint64(n))
		if got := VersionKey(n); got != want {
			t.Fatalf("VersionKey(%#x) = %q, want %q", uint64(n), got, want)
		}
		if got, ok := parseNodeHex(VersionKey(n)[len(VersionKeyPrefix):]); !ok || got != uint64(n) {
			t.Fatalf("VersionKey(%#x) parses back as %#x, %v", uint64(n), got, ok)
		}
	}
}
