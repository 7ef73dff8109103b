package simulations

import "testing"

// The consistency checkers catch what they are for: a node that ignores
// revocations serves revoked sessions, and versioned writes that carry only
// the changed fields (while stamping the writer's version entry) let a node
// that missed an earlier write claim a version it does not hold.

func TestPlantedRevocationIgnored(t *testing.T) {
	caughtWithin(t, "revoke-under-partition", CheckRevokedServed, &hooks{ignoreRevocation: true})
}

func TestPlantedPartialVersionedWrites(t *testing.T) {
	caughtWithin(t, "revoke-under-partition", CheckVersionReads, &hooks{partialVersionedWrites: true})
}
