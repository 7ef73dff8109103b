package persist

import (
	"io/fs"
	"path/filepath"
)

// diskUsage sums the allocated size of the files under dir (allocatedSize:
// blocks where the system reports them, else the file's size).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += allocatedSize(info)
		return nil
	})
	return total, err
}
