package p2pnode

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
)

type batchInbound struct {
	plain   int
	batches []*crdt.Batch
}

func (b *batchInbound) HandleGossip(node.PeerID, []byte) { b.plain++ }
func (b *batchInbound) HandleDirect(node.PeerID, []byte) {}
func (b *batchInbound) PeerUp(node.PeerID)               {}
func (b *batchInbound) PeerDown(node.PeerID)             {}
func (b *batchInbound) HandleGossipBatch(_ node.PeerID, x *crdt.Batch) {
	b.batches = append(b.batches, x)
}

// The batch the validator decoded reaches the node as it is, not as bytes
// to decode again.
func TestDecodedGossipReachesTheNode(t *testing.T) {
	in := &batchInbound{}
	a := &network{in: in}
	batch := crdt.NewBatch()
	a.HandleDecodedGossip(peer.ID("x"), []byte("raw"), batch)
	if len(in.batches) != 1 || in.batches[0] != batch || in.plain != 0 {
		t.Fatalf("batches %d, plain %d", len(in.batches), in.plain)
	}
	a.HandleDecodedGossip(peer.ID("x"), []byte("raw"), "not a batch")
	if in.plain != 1 {
		t.Fatal("a value that is not a batch did not fall back to the bytes")
	}
}
