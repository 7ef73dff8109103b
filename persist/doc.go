// Package persist is sessionmesh's durable replica: every session a peer
// holds, as crdt state in Badger (or, for tests and the simulator, in
// memory), with what anti-entropy needs to find differences between peers
// cheaply.
//
// # Writing
//
// Store.Apply merges a crdt.Batch of deltas at the caller's local time and
// returns the changes. The store has one writer: Apply calls queue, and the
// caller at the head commits everything queued as one group, one Badger
// transaction and one fsync (group commit), while the others wait for their
// result. Being the only writer, it merges into the cached decoded state of
// a session without reading Badger, and its transactions never conflict.
// A session is kept as a header record, which holds every field as of the
// last header change, plus one record per field written since, so a write
// of one field rewrites that field's record only and a new session is one
// record; a field record carries the session's version entries too, so a
// versioned write is one record (record.go); hashes and encoded sizes are
// updated by what a write changes.
//
// Deltas are admitted first: one stamped beyond the drift bound comes back
// in Result.Deferred to be offered again later; one for a session
// past its absolute deadline (the later of the delta's and the stored one),
// malformed, over Options.Limits, or for a record that cannot be read comes
// back in Result.Refused. A batch too large for one transaction is merged in
// several; if a later one fails, Result still reports the earlier ones.
//
// What an acknowledged write (Apply returned without error) survives depends
// on Options.Durability:
//
//	DurabilitySync  fsynced before Apply returns: survives kill -9 and power loss
//	DurabilityGroup the same, gathering writes for up to GroupWindow first
//	DurabilityNone  in the OS page cache when Apply returns: survives kill -9;
//	                a power loss may lose up to SyncInterval (1s) of writes
//
// Readers may see a write before Apply returns it to its caller.
//
// # Reading
//
// Store.Get serves hot sessions from an in-memory cache of decoded sessions
// and falls back to Badger. The writer puts every state it commits into the
// cache, so a cached entry is always the latest committed state; a miss
// fills the cache only if no entry appeared meanwhile and nothing was
// evicted or collected since its read began (what it read may be older).
// Sessions returned are shared and read-only.
//
// # Anti-entropy digests
//
// Sessions fall into Buckets buckets by a hash of their id. A session's hash
// is the XOR of its records' hashes (each over the id and the record), and
// each bucket's digest the XOR of its sessions' hashes, updated in O(1) per
// record written; Digests.Root combines them all. Peers holding
// the same sessions have equal digests, so comparing Root costs 8 bytes when
// they agree, and Store.Bucket lists a differing bucket's sessions. Digests
// are kept in memory, updated for every committed write (also those of a
// batch that later failed), and rebuilt by one scan at Open, so a crash
// cannot leave them disagreeing with the data.
//
// # Garbage collection
//
// A session or tombstone is collected once its absolute deadline plus
// MaxDrift has passed (crdt.Session.Collectable). An index ordered by deadline
// makes each pass cost what it removes, bounded by Options.GCBatch. Badger
// gives the space back as it compacts (deleted keys are dropped when they
// reach the bottom level). Session records live in the LSM tree, never in
// Badger's value log (the memtable is sized so that Badger's value
// threshold covers the largest session Limits allow, up to Badger's 1 MiB
// cap): value-log GC can revive a deleted key whose value it rewrote, and
// the value log stays one small file (Options.ValueLogFileSize). Disk
// use levels off at the live data plus a sawtooth of about five memtables
// (a churn test measures it). Long-lived read transactions would hold the
// space back, so none is kept open. Sessions
// that expired by idle timeout stay (invisible) until their absolute
// deadline: forgetting them earlier would let a touch from a partitioned peer
// recreate them without their fields.
//
// # On disk
//
// A store directory holds Badger's files only, tagged as sessionmesh's in the
// manifest and by a format marker. Open refuses anything else (ErrForeign),
// unreadable files (ErrCorrupt) and a wrong encryption key (ErrBadKey).
package persist
