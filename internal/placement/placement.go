package placement

import (
	"container/list"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Slots is the number of hash slots. It equals persist.Buckets, so that a
// slot is an anti-entropy bucket and the store's per-bucket digests compare
// a slot between two holders (placement_test checks they agree).
const Slots = 4096

// SlotOf returns the slot of a session id: persist.BucketOf.
func SlotOf(id string) int { return int(xxhash.Sum64String(id) % Slots) }

// Score is the rendezvous weight of member for slot: the slot's holders
// are the members with the highest scores. The slot goes first, in fixed
// width, so no (slot, member) pair collides with another's input.
func Score(slot int, member string) uint64 {
	var buf [64]byte
	b := binary.BigEndian.AppendUint32(buf[:0], uint32(slot))
	b = append(b, member...)
	return xxhash.Sum64(b)
}

// Holders returns the holders of slot among members: the min(r, len(members))
// members of highest Score, highest first, ties broken by member id. r <= 0
// means every member. members may be in any order and is not modified.
func Holders(slot int, members []string, r int) []string {
	if r <= 0 || r > len(members) {
		r = len(members)
	}
	// Each member's score is computed once; the best r are kept sorted
	// by insertion (r is a handful, members a region's peers).
	type scored struct {
		score uint64
		id    string
	}
	better := func(a, b scored) bool { return a.score > b.score || a.score == b.score && a.id < b.id }
	best := make([]scored, 0, r+1)
	for _, m := range members {
		x := scored{Score(slot, m), m}
		i := len(best)
		for i > 0 && better(x, best[i-1]) {
			i--
		}
		if i >= r {
			continue
		}
		best = slices.Insert(best, i, x)
		if len(best) > r {
			best = best[:r]
		}
	}
	out := make([]string, len(best))
	for i, b := range best {
		out[i] = b.id
	}
	return out
}

// Table is the placement of every slot over one region's members.
type Table struct {
	r       int
	members []string
	holders [Slots][]string
}

// NewTable places every slot over members (duplicates ignored) with r
// holders each (r <= 0: every member holds every slot).
func NewTable(members []string, r int) *Table {
	ms := slices.Clone(members)
	if plantOrder() {
		t := &Table{r: r, members: ms}
		for s := range Slots {
			t.holders[s] = plantHolders(s, ms, r)
		}
		return t
	}
	slices.Sort(ms)
	ms = slices.Compact(ms)
	key := tableKey(ms, r)
	if t := tables.get(key); t != nil {
		return t
	}
	t := &Table{r: r, members: ms}
	for s := range Slots {
		t.holders[s] = Holders(s, ms, r)
	}
	tables.put(key, t)
	return t
}

// Members returns the members, sorted.
func (t *Table) Members() []string { return t.members }

// Replicas returns the r the table was built with.
func (t *Table) Replicas() int { return t.r }

// Holders returns the holders of slot, highest score first. The caller
// must not modify the slice.
func (t *Table) Holders(slot int) []string { return t.holders[slot] }

// Holds reports whether member holds slot.
func (t *Table) Holds(slot int, member string) bool {
	return slices.Contains(t.holders[slot], member)
}

// Held returns the slots member holds, ascending.
func (t *Table) Held(member string) []int {
	var out []int
	for s := range Slots {
		if t.Holds(s, member) {
			out = append(out, s)
		}
	}
	return out
}

// Moved counts the slots whose holder set differs between a and b (as
// sets: a change of order among the same holders moves nothing).
func Moved(a, b *Table) int {
	n := 0
	for s := range Slots {
		ha, hb := a.holders[s], b.holders[s]
		if len(ha) != len(hb) {
			n++
			continue
		}
		for _, m := range ha {
			if !slices.Contains(hb, m) {
				n++
				break
			}
		}
	}
	return n
}

// Tables are immutable and a function of (members, r): the recent ones are
// kept and shared. Placing every slot costs Slots x members hashes (5 ms
// for 22 members), and every peer of a mesh, on every membership change,
// computes the same tables: in one process (the simulator, or tests with
// many peers) they are computed once.
var tables = tableCache{m: map[string]*list.Element{}}

// cachedTables bounds the cache (a table of 22 members is about 250 KB).
const cachedTables = 32

type tableCache struct {
	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // values *cachedTable, most recent first
}

type cachedTable struct {
	key string
	t   *Table
}

func tableKey(sorted []string, r int) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r))
	for _, m := range sorted {
		b.WriteByte(0)
		b.WriteString(m)
	}
	return b.String()
}

func (c *tableCache) get(key string) *Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedTable).t
}

func (c *tableCache) put(key string, t *Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = c.lru.PushFront(&cachedTable{key: key, t: t})
	if c.lru.Len() > cachedTables {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*cachedTable).key)
	}
}
