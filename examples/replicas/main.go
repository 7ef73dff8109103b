// Command replicas shows the replica core at work without a network: two
// peers, each with its own Badger store, write the same session
// concurrently, exchange their deltas in opposite orders and end with equal
// digests; then a logout on one side beats a later write on the other.
//
//	go run ./examples/replicas
package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		os.Exit(1)
	}
}

type peer struct {
	name  string
	clock *crdt.Clock
	store *persist.Store
}

func newPeer(name string, node crdt.NodeID, dir string) (*peer, error) {
	o := persist.DefaultOptions(dir)
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := persist.Open(o)
	if err != nil {
		return nil, err
	}
	return &peer{name: name, clock: crdt.NewClock(node, o.MaxDrift), store: s}, nil
}

// write applies a delta locally and returns it for the other peer.
func (p *peer) write(d *crdt.Session, now time.Time) (*crdt.Session, error) {
	_, err := p.store.Apply(crdt.NewBatch(d), now)
	return d, err
}

func (p *peer) receive(now time.Time, deltas ...*crdt.Session) error {
	res, err := p.store.Apply(crdt.NewBatch(deltas...), now)
	for _, ch := range res.Changes {
		fmt.Printf("  %s: %s changed (created=%v destroyed=%v fields=%v)\n", p.name, ch.ID, ch.Created, ch.Destroyed, ch.Fields)
	}
	return err
}

func run() error {
	dir, err := os.MkdirTemp("", "sessionmesh-replicas-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	eu, err := newPeer("eu", 1, dir+"/eu")
	if err != nil {
		return err
	}
	defer eu.store.Close()
	us, err := newPeer("us", 2, dir+"/us")
	if err != nil {
		return err
	}
	defer us.store.Close()

	now := time.Now()
	fmt.Println("login on eu, replicated to us")
	create, err := eu.write(crdt.Create("session-1", eu.clock.Now(now), now.Add(12*time.Hour), 30*time.Minute), now)
	if err != nil {
		return err
	}
	if err := us.receive(now, create); err != nil {
		return err
	}

	fmt.Println("concurrent writes on both sides, delivered crosswise")
	s, _ := eu.store.Get("session-1")
	d1, err := eu.write(s.Set("user", []byte("alice"), eu.clock.Now(now)), now)
	if err != nil {
		return err
	}
	d2, err := us.write(s.Set("theme", []byte("dark"), us.clock.Now(now)), now)
	if err != nil {
		return err
	}
	if err := eu.receive(now, d2); err != nil {
		return err
	}
	if err := us.receive(now, d1); err != nil {
		return err
	}
	fmt.Printf("digests equal: %v\n", eu.store.Digests().Root == us.store.Digests().Root)

	fmt.Println("logout on eu; us, cut off, writes later; then they meet")
	logout, err := eu.write(s.Destroy(eu.clock.Now(now)), now)
	if err != nil {
		return err
	}
	later := now.Add(time.Second)
	late, err := us.write(s.Set("cart", []byte("1 item"), us.clock.Now(later)), later)
	if err != nil {
		return err
	}
	if err := eu.receive(later, late); err != nil {
		return err
	}
	if err := us.receive(later, logout); err != nil {
		return err
	}
	for _, p := range []*peer{eu, us} {
		got, err := p.store.Get("session-1")
		if err != nil {
			return err
		}
		fmt.Printf("%s: session visible: %v\n", p.name, got.Visible(later))
	}
	fmt.Printf("digests equal: %v\n", eu.store.Digests().Root == us.store.Digests().Root)
	return nil
}
