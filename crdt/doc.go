// Package crdt holds sessionmesh's replicated data types: a hybrid logical
// clock, the session state-based CRDT whose deltas peers exchange, and their
// wire format. It is pure: no I/O, no goroutines, no wall clock and no global
// randomness. Time always comes in as an argument, so the simulator can drive
// the same code with a virtual clock.
//
// # Hybrid logical clock
//
// A Timestamp orders totally by (physical milliseconds, logical counter, node
// id): 48 bits of Unix milliseconds and a 16-bit counter packed in Time, and
// the issuing NodeID. A Clock issues timestamps from the physical time its
// caller passes (Clock.Now) and observes remote ones (Clock.Observe), so local
// writes always order after what the replica has seen.
//
// A remote timestamp more than MaxDrift ahead of local physical time is
// refused with ErrClockDrift and not merged yet: a peer with a broken clock
// must not win every last-writer-wins race for as long as its clock is wrong.
// It is not dropped either, since each replica decides by its own clock and
// dropping would leave replicas disagreeing forever. The caller defers it;
// anti-entropy offers it again and once local time has caught up, it merges.
//
// # Sessions
//
// A Session maps field keys to last-writer-wins registers (a value, or a
// removal) and carries metadata: the create stamp, an absolute deadline fixed
// at creation, an idle timeout, a last-writer-wins register that SetIdle
// moves up or down (Redis's EXPIRE shortens a session as well as lengthening
// it), and the last access, a max-register that Touch only moves forward. A
// session is expired at
//
//	now >= min(absolute, lastAccess + idle)
//
// and expired sessions are invisible to readers (Session.Visible).
//
// Between two writes of one key, the later timestamp wins; on equal
// (physical, logical) parts a removal beats a value, then the higher node id
// wins (and value bytes settle the case of a node id shared by mistake).
//
// The registers are a Fields: a persistent map that versions of a session
// share. Merging into a Clone (which copies the header only) makes new
// versions of the registers it changes and leaves the original as it was,
// so a store can hand one version to lock-free readers while it merges the
// next, and a write costs what it changes (amortized O(√n) for n fields),
// not a copy of the session. Values are strings, so no one can change them
// in place. A decoded session, or one merged from nothing, keeps its keys,
// values and timestamps packed in one allocation that holds no pointers.
//
// # Destroy is final
//
// Destroying a session (logout) leaves a tombstone that dominates every write
// to that id, whatever its timestamp: a peer that was partitioned away and
// writes later cannot bring a logged-out session back. The state is a
// join-semilattice with "destroyed" as its top: a tombstone keeps only the id,
// the destroy stamp and the absolute deadline.
//
// Tombstones do not grow without bound. A delta for a session past its
// absolute deadline is refused by Admit (ErrExpired), and once the deadline
// plus MaxDrift has passed a replica may forget the session or its tombstone
// altogether (Session.Collectable): any stale copy that turns up later is
// already expired and cannot revive the id.
//
// # Deltas and merge
//
// Every mutation (Create, Session.Set, Session.Remove, Session.Touch,
// Session.Destroy, Tombstone) returns a delta: a Session holding only what
// changed plus the session's header, and it leaves its receiver untouched.
// Deltas join into a Batch, so a sender can carry many writes in one message.
// Session.Merge joins a delta (or a whole replica) into a state in place and
// reports what changed (Change). Merge is commutative, associative and
// idempotent: replicas that received the same deltas, in any order and with
// duplicates, are equal, and MarshalSession encodes them to the same bytes.
// A delta may carry a Guard on its version entries (see Version): a replica
// that does not meet it merges the delta's registers but not its entries,
// which anti-entropy's whole states bring later; replicas still converge.
//
// The usual loop on a replica is:
//
//	ts := clock.Now(now)                // local write
//	d := state.Set("user", []byte("42"), ts)
//	// persist d, then broadcast it
//
//	for _, d := range batch.Sessions() { // remote batch
//		if err := crdt.Admit(d, now, maxDrift); err != nil {
//			// ErrClockDrift: keep for later; ErrExpired: drop
//			continue
//		}
//		clock.Observe(d.MaxTimestamp(), now)
//		state.Merge(d)
//	}
//
// # Wire format
//
// MarshalSession and MarshalBatch write a version byte (FormatVersion), a
// kind byte, then msgpack. Decoding is strict and bounded by Limits: only the
// canonical encoding of a valid session is accepted, lengths are checked
// before anything is allocated, and bad input is an error, never a panic.
//
// Format 2 (FormatVersion) added the idle timeout's stamp. Format 1 payloads,
// from builds where the idle timeout was a max-register, still decode: their
// sessions have a zero IdleTS, which any stamped write of the idle timeout
// beats (among unstamped values the larger wins, as it did). A format-1
// build refuses format 2 with ErrVersion, so a mesh is upgraded peer by
// peer with the old peers logging refused deltas until they are upgraded,
// after which anti-entropy repairs what they refused.
package crdt
