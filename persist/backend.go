package persist

import (
	"context"
	"errors"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// backend is where the store keeps sessions: Badger on disk, or an ordered
// map in memory (tests and the simulator, where Badger's own in-memory mode
// cost most of a simulated hour). Everything above it (merge, admission,
// cache, digests, collection) is shared, so both behave the same.
//
// A backend has one writer at a time (the store's committer); reads may run
// concurrently with it and with each other. Sessions it returns may be
// shared: they are never modified.
type backend interface {
	// load returns the stored state of session id, nil when absent.
	load(id string) (*crdt.Session, error)
	// scanBuckets calls fn with every session of buckets (ascending),
	// bucket by bucket, ordered by id length then id, from one consistent
	// snapshot. A session that cannot be read goes to bad instead.
	scanBuckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error, bad func(error)) error
	// scanAll calls fn with every session.
	scanAll(fn func(*crdt.Session) error, bad func(error)) error
	// due returns up to limit sessions whose deadline is at or before
	// cutoff, earliest first, and whether more may be due. With after, it
	// starts past that entry, which the caller has removed with every
	// earlier one.
	due(cutoff int64, limit int, after *dueEntry) ([]dueEntry, bool, error)
	// commit makes the writes durable as the store's durability mode
	// promises, in one transaction, and returns how many of ws, from the
	// start, are written (all unless it fails). Writes too big for one
	// transaction fail with errTooBig and none written. It takes
	// ownership of every state.
	commit(ws []write) (int, error)
	// sync flushes whatever commit left unsynced (DurabilityNone).
	sync() error
	// reclaim gives back disk space of deleted records, if it can.
	reclaim()
	// releasePages drops the process's mappings of stored data that the
	// operating system keeps in its page cache anyway (see
	// Options.TableReleaseInterval), and returns how many tables it went
	// over.
	releasePages() (int, error)
	close() error
}

// errTooBig reports writes too big for one backend transaction.
var errTooBig = errors.New("persist: writes too big for one transaction")

// write replaces session id's stored state old with state (nil deletes
// it), and moves its entry in the deadline index from oldDeadline to
// newDeadline (0: none). For a live state, header says whether the header
// changed and fields lists the fields that did: a backend that stores them
// apart rewrites those only. old is nil when there was none, or, for a
// deletion, when it could not be read.
type write struct {
	id          string
	bucket      int // BucketOf(id)
	state, old  *crdt.Session
	header      bool
	fields      []string
	oldDeadline int64
	newDeadline int64
	// rec is the in-memory backend's record of id when the committer
	// knows it (from the cache), so that commit updates it without a map
	// lookup; commit leaves there the record it wrote. Other backends
	// ignore it.
	rec *memRecord
}

// dueEntry is a session found due in the deadline index.
type dueEntry struct {
	deadline int64
	id       string
}
