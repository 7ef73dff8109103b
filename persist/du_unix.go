//go:build unix

package persist

import (
	"io/fs"
	"syscall"
)

// allocatedSize is the space the file takes on disk: its blocks (a sparse
// or preallocated file takes less or more than its size).
func allocatedSize(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
