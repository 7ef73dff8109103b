package cputime

import (
	"crypto/sha256"
	"runtime"
	"testing"
)

// Work done shows up: a loop that hashes for a while moves the figure.
func TestProcessCountsWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no getrusage here: Process is 0 by design")
	}
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
