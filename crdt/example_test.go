package crdt_test

import (
	"fmt"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Two replicas write the same session concurrently, exchange their deltas in
// opposite orders, and end equal. A destroy then wins over a later write.
func Example() {
	now := time.UnixMilli(1_700_000_000_000)
	a := crdt.NewClock(1, 5*time.Second)
	b := crdt.NewClock(2, 5*time.Second)

	create := crdt.Create("s1", a.Now(now), now.Add(24*time.Hour), 30*time.Minute)
	replicaA, replicaB := create.Clone(), create.Clone()

	d1 := replicaA.Set("user", []byte("alice"), a.Now(now))
	d2 := replicaB.Set("cart", []byte("3 items"), b.Now(now))
	replicaA.Merge(d1)
	replicaA.Merge(d2)
	replicaB.Merge(d2)
	replicaB.Merge(d1)

	encA, _ := crdt.MarshalSession(replicaA, crdt.DefaultLimits())
	encB, _ := crdt.MarshalSession(replicaB, crdt.DefaultLimits())
	fmt.Println("equal:", string(encA) == string(encB), replicaA.Keys())

	logout := replicaA.Destroy(a.Now(now))
	late := replicaB.Set("user", []byte("mallory"), b.Now(now.Add(time.Minute)))
	replicaA.Merge(late)
	replicaA.Merge(logout)
	fmt.Println("visible after logout:", replicaA.Visible(now.Add(time.Minute)))
	// Output:
	// equal: true [cart user]
	// visible after logout: false
}
