//go:build !unix

package persist

import "io/fs"

// allocatedSize is the file's size where the system reports no blocks.
func allocatedSize(info fs.FileInfo) int64 { return info.Size() }
