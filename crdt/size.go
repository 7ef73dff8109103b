package crdt

// Sizes of the canonical encoding, computed without encoding: a store that
// keeps a session's fields apart checks MaxSessionBytes per write without
// re-encoding the whole session.

// EncodedSize returns len(MarshalSession(s)) for a valid s.
func EncodedSize(s *Session) int {
	n := HeaderSize(s, s.Fields.Len())
	for k, f := range s.Fields.All() {
		n += FieldSize(k, f)
	}
	return n
}

// HeaderSize returns the bytes of s's encoding that are not its fields,
// for a session holding fields fields.
func HeaderSize(s *Session, fields int) int {
	// Each integer written out: a loop over a slice of them cost twice
	// as much, and a store sizes the header twice a merge.
	n := 2 + 1 + strSize(len(s.ID)) + // version, kind, array header, id
		uintSize(s.Created.Time) + uintSize(uint64(s.Created.Node)) + uintSize(uint64(s.Absolute)) +
		uintSize(uint64(s.Idle)) + uintSize(uint64(s.LastAccess)) +
		uintSize(s.Destroyed.Time) + uintSize(uint64(s.Destroyed.Node))
	if !s.IdleTS.IsZero() {
		n += uintSize(s.IdleTS.Time) + uintSize(uint64(s.IdleTS.Node))
	}
	switch {
	case fields <= 15:
		n++
	case fields <= 0xffff:
		n += 3
	default:
		n += 5
	}
	return n
}

// FieldSize returns the bytes field key = f takes in a session's encoding.
func FieldSize(key string, f Field) int {
	n := strSize(len(key)) + 1 + uintSize(f.TS.Time) + uintSize(uint64(f.TS.Node))
	if f.Removed {
		return n + 1
	}
	switch l := len(f.Value); {
	case l <= 0xff:
		return n + 2 + l
	case l <= 0xffff:
		return n + 3 + l
	default:
		return n + 5 + l
	}
}

func uintSize(v uint64) int {
	switch {
	case v <= 127:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	}
	return 9
}

func strSize(l int) int {
	switch {
	case l <= 31:
		return 1 + l
	case l <= 0xff:
		return 2 + l
	case l <= 0xffff:
		return 3 + l
	}
	return 5 + l
}
