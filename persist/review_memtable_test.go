package persist

import "testing"

// A memtable past what Badger's skiplist arena can address (32-bit
// offsets) is refused with a clear error rather than opened: 5 GiB was
// accepted and Badger created a 10 GiB memtable log for it.
func TestReviewMemTableSizeBounded(t *testing.T) {
	o := DefaultOptions(t.TempDir())
	o.MemTableSize = 5 << 30
	if err := o.Validate(); err == nil {
		t.Fatal("a 5 GiB memtable accepted")
	}
	if s, err := Open(o); err == nil {
		s.Close()
		t.Fatal("a store opened with a 5 GiB memtable")
	}
	o.MemTableSize = MaxMemTableSize
	if err := o.Validate(); err != nil {
		t.Fatalf("the largest memtable refused: %v", err)
	}
}
