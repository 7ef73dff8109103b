package persist

import "context"

// backend is where the store keeps session records: Badger on disk, or an
// ordered map in memory (tests and the simulator, where Badger's own
// in-memory mode cost most of a simulated hour). Everything above it (merge,
// admission, cache, digests, collection) is shared, so both behave the same.
//
// A backend has one writer at a time (the store's committer); reads may run
// concurrently with it and with each other.
type backend interface {
	// load returns the stored encoding of session id, nil when absent.
	// The result belongs to the caller.
	load(id string) ([]byte, error)
	// scanBucket calls fn with every session record of bucket, in id
	// order, from one consistent snapshot.
	scanBucket(ctx context.Context, bucket int, fn func(raw []byte) error) error
	// scanAll calls fn with every session record and its bucket.
	scanAll(fn func(bucket int, raw []byte) error) error
	// due returns up to limit sessions whose deadline is at or before
	// cutoff, earliest first, and whether more may be due.
	due(cutoff int64, limit int) ([]dueEntry, bool, error)
	// commit makes the writes durable as the store's durability mode
	// promises, atomically when they fit in one transaction. It takes
	// ownership of every enc.
	commit(ws []write) error
	// sync flushes whatever commit left unsynced (DurabilityNone).
	sync() error
	// reclaim gives back disk space of deleted records, if it can.
	reclaim()
	close() error
}

// write replaces a session record (enc) or deletes it (enc nil), moving its
// entry in the deadline index from oldDeadline to newDeadline (0: none).
type write struct {
	id          string
	enc         []byte
	oldDeadline int64
	newDeadline int64
}

// dueEntry is a session found due in the deadline index.
type dueEntry struct {
	deadline int64
	id       string
}
