//go:build unix

package cputime

import (
	"crypto/sha256"
	"testing"
)

// Work done shows up: a loop that hashes for a while moves the figure.
func TestProcessCountsWork(t *testing.T) {
	before := Process()
	buf := make([]byte, 1<<20)
	for range 200 {
		sum := sha256.Sum256(buf)
		buf[0] = sum[0]
	}
	if after := Process(); after <= before {
		t.Fatalf("CPU time did not move over 200 MiB of hashing: %v then %v", before, after)
	}
}
