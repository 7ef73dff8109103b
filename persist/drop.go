package persist

import (
	"errors"
	"fmt"
)

// Handed names a session as a peer copied it elsewhere: its id and the
// SessionHash of the state copied.
type Handed struct {
	ID   string
	Hash uint64
}

// Drop removes the sessions of hs whose stored state still hashes to the
// given Hash, and returns how many it removed. It is how a peer that does
// not hold a session's slot (partial replication) forgets its copy once
// the slot's holders stored it: a session written again since it was
// copied has another hash and stays, to be copied again. Unlike a
// tombstone, a drop is not replicated. It needs no fsync: a drop lost in a
// crash only brings back a copy that is handed off again.
func (s *Store) Drop(hs []Handed) (int, error) {
	if !s.enter() {
		return 0, ErrClosed
	}
	defer s.leave()
	dropped := 0
	// In chunks, as collection does: the committer waits for each, so
	// one long drop would hold up every write meanwhile.
	for len(hs) > 0 {
		n := min(len(hs), gcChunk)
		d, err := s.dropChunk(hs[:n])
		dropped += d
		if err != nil {
			return dropped, err
		}
		hs = hs[n:]
	}
	return dropped, nil
}

// dropChunk drops hs as the store's writer (no Apply commits meanwhile).
func (s *Store) dropChunk(hs []Handed) (int, error) {
	c := &s.commit
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := make([]write, 0, len(hs))
	hashes := make([]uint64, 0, len(hs))
	for _, h := range hs {
		var cur uint64
		w := write{id: h.ID, bucket: BucketOf(h.ID)}
		if ce, ok := s.cache.entry(h.ID); ok {
			w.old, cur = ce.s, ce.hash
		} else {
			old, err := s.read(h.ID)
			switch {
			case errors.Is(err, ErrCorrupt), old == nil && err == nil:
				continue
			case err != nil:
				return 0, fmt.Errorf("persist: drop: %w", err)
			}
			w.old, cur = old, sessionHash(old)
		}
		if cur != h.Hash || w.old == nil {
			continue
		}
		w.oldDeadline = w.old.Absolute
		ws = append(ws, w)
		hashes = append(hashes, cur)
	}
	written, err := s.commitWrites(ws)
	for i, w := range ws {
		s.cache.remove(w.id)
		if i < written {
			s.digests.update(w.bucket, hashes[i], 0)
		}
	}
	if err != nil {
		return written, fmt.Errorf("persist: drop: %w", err)
	}
	return written, nil
}
