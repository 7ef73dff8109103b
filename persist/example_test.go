package persist_test

import (
	"fmt"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

func ExampleStore_Apply() {
	store, err := persist.Open(persist.InMemoryOptions())
	if err != nil {
		panic(err)
	}
	defer store.Close()

	now := time.UnixMilli(1_700_000_000_000)
	clock := crdt.NewClock(1, 5*time.Second)
	create := crdt.Create("s1", clock.Now(now), now.Add(time.Hour), 30*time.Minute)
	set := create.Set("user", []byte("alice"), clock.Now(now))

	res, err := store.Apply(crdt.NewBatch(create, set), now)
	if err != nil {
		panic(err)
	}
	fmt.Println("changed:", res.Changes[0].Fields)

	s, _ := store.Get("s1")
	user, _ := s.Get("user")
	fmt.Println("user:", string(user), "visible:", s.Visible(now))
	// Output:
	// changed: [user]
	// user: alice visible: true
}
