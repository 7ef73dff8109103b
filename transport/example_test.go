package transport_test

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/sessionmesh/sessionmesh/transport"
)

// inbox is a Handler that forwards direct messages to a channel.
type inbox struct {
	direct chan string
	up     chan peer.ID
}

func (i inbox) HandleGossip(peer.ID, []byte)        {}
func (i inbox) HandleDirect(_ peer.ID, data []byte) { i.direct <- string(data) }
func (i inbox) PeerUp(id peer.ID)                   { i.up <- id }
func (i inbox) PeerDown(peer.ID)                    {}

// Two hosts on loopback: b bootstraps to a, then a sends b a direct
// message.
func Example() {
	ctx := context.Background()
	ia := inbox{direct: make(chan string, 1), up: make(chan peer.ID, 1)}
	a, err := transport.New(ctx, transport.DefaultConfig(), ia)
	if err != nil {
		panic(err)
	}
	defer a.Close()

	cfg := transport.DefaultConfig()
	cfg.Bootstrap = []string{a.Addrs()[0].String()}
	ib := inbox{direct: make(chan string, 1), up: make(chan peer.ID, 1)}
	b, err := transport.New(ctx, cfg, ib)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	fmt.Println("a sees b:", <-ia.up == b.ID())
	if err := a.Send(ctx, b.ID(), []byte("hello")); err != nil {
		panic(err)
	}
	fmt.Println("b got:", <-ib.direct)
	// Output:
	// a sees b: true
	// b got: hello
}
