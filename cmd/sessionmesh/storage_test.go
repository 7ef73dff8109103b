package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestServeStorageSettings: the daemon's storage settings reach the store
// it opens: a memtable of --memtable-bytes shows as Badger's memtable log
// of that size in the data directory, and a zstd store serves writes.
func TestServeStorageSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProc(t, "s", dir, "--memtable-bytes", "24MiB", "--compression", "zstd", "--cache-bytes", "0")
	mems, _ := filepath.Glob(filepath.Join(dir, "store", "*.mem"))
	if len(mems) == 0 {
		t.Fatalf("no memtable log in %s", filepath.Join(dir, "store"))
	}
	for _, m := range mems {
		if fi, err := os.Stat(m); err != nil || fi.Size() < 24<<20 {
			t.Errorf("memtable log %s: %v bytes (%v), want at least the 24 MiB asked for", m, fi.Size(), err)
		}
	}
	create(t, p, `{"fields":{"a":"b"}}`)
}
