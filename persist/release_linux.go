//go:build linux

package persist

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
)

// releaseTablePages drops the process's mappings of the pages of Badger's
// tables (madvise MADV_DONTNEED) and returns how many tables it went over. The tables are MAP_SHARED mappings of files Badger synced
// when it wrote them, so their pages stay in the page cache and the next
// read of one maps it again: nothing is lost. Which mappings are tables
// is read from /proc/self/maps, so the one hazard is a table unmapped
// (compacted away) between that read and the madvise, its addresses
// reused by memory of another kind, which MADV_DONTNEED would zero. An
// open iterator holds a reference to every table it was built over, and
// Badger unmaps a table only once its last reference goes: tables listed
// both before and after the iterator opens were in the tree while it
// opened, so it holds them, and only those get MADV_DONTNEED. The tables
// a compaction is writing are not in the tree until it ends (a compaction
// after a burst of writes rewrites much of the store): they get
// MADV_PAGEOUT, which is safe whatever is mapped there.
func (b *badgerBackend) releaseTablePages() (int, error) {
	if b.mapsDir == "" {
		return 0, nil
	}
	before := tableIDs(b.db)
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	held := tableIDs(b.db)
	for id := range held {
		if !before[id] {
			delete(held, id)
		}
	}
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("persist: release table pages: %w", err)
	}
	defer maps.Close()
	released := 0
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		start, end, path, ok := parseMapsLine(sc.Bytes())
		if !ok || filepath.Dir(path) != b.mapsDir {
			continue
		}
		id, ok := table.ParseFileID(filepath.Base(path))
		if !ok {
			continue
		}
		advice := uintptr(syscall.MADV_DONTNEED)
		if !held[id] {
			// A table being built by a compaction, not in the tree yet
			// (or one just compacted away): no reference holds its
			// mapping. MADV_PAGEOUT reclaims the pages of whatever is
			// mapped there, never changing its contents (anonymous memory
			// would only be swapped out), at the cost of dropping them
			// from the page cache too.
			if b.noPageout.Load() {
				continue
			}
			advice = madvPageout
			// Not the table's index at its end: evicted, it would be read
			// back from the disk by the next pass (db.Tables reads it) and
			// by every lookup in the table.
			if end-start <= pageoutKeepTail {
				continue
			}
			end -= pageoutKeepTail
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, advice); errno != 0 {
			if advice == madvPageout && errno == syscall.EINVAL {
				b.noPageout.Store(true) // Linux before 5.4
				continue
			}
			if advice == madvPageout {
				continue // gone meanwhile: nothing to release
			}
			return released, fmt.Errorf("persist: release table pages of %s: %w", path, errno)
		}
		released++
	}
	if err := sc.Err(); err != nil {
		return released, fmt.Errorf("persist: release table pages: %w", err)
	}
	return released, nil
}

// madvPageout is MADV_PAGEOUT (Linux 5.4), which package syscall lacks.
const madvPageout = 21

// pageoutKeepTail is how much of the end of a table MADV_PAGEOUT leaves:
// its index (block offsets and bloom filter), under 100 KiB for the
// largest tables of a store of 1M sessions.
const pageoutKeepTail = 256 << 10

// tableIDs returns the ids of the tables in Badger's tree.
func tableIDs(db *badger.DB) map[uint64]bool {
	ts := db.Tables()
	ids := make(map[uint64]bool, len(ts))
	for _, t := range ts {
		ids[t.ID] = true
	}
	return ids
}

// parseMapsLine parses a line of /proc/self/maps
// ("start-end perms offset dev inode path") into the mapping's addresses
// and path; ok is false for mappings without a path.
func parseMapsLine(line []byte) (start, end uintptr, path string, ok bool) {
	fields := 0
	i := 0
	for fields < 5 {
		j := bytes.IndexByte(line[i:], ' ')
		if j < 0 {
			return 0, 0, "", false
		}
		i += j
		for i < len(line) && line[i] == ' ' {
			i++
		}
		fields++
	}
	path = string(line[i:])
	if path == "" || path[0] != '/' {
		return 0, 0, "", false
	}
	addrs, _, _ := bytes.Cut(line, []byte{' '})
	lo, hi, found := bytes.Cut(addrs, []byte{'-'})
	if !found {
		return 0, 0, "", false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, "", false
	}
	return uintptr(s), uintptr(e), path, true
}
