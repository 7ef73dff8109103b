package persist

import "testing"

// TestBadgerDetectsNoConflicts: the store is Badger's only writer (its
// commits are serialized), so Badger's conflict detection, which tracks
// every key read and written per transaction, would only cost memory and
// time (issue 12).
func TestBadgerDetectsNoConflicts(t *testing.T) {
	s := openStore(t, testOptions(t.TempDir()))
	if badgerDB(t, s).Opts().DetectConflicts {
		t.Fatal("Badger detects conflicts")
	}
}
