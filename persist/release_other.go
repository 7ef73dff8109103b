//go:build !linux

package persist

// releaseTablePages does nothing off Linux: the mappings of Badger's
// tables are left to the operating system.
func (b *badgerBackend) releaseTablePages() (int, error) { return 0, nil }
