package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Fields against a model map, through every path a write can take since
// 6b1dc0b: With into the overlay and over its limit (rebase from the old
// version and the delta), Join of a few and of many keys, bases of every
// size, ties broken by removal then node then value, tombstones, and
// deltas older than the registers they meet. The model applies Compare
// key by key; With sets a register whatever it held.
func TestReviewFieldsMatchModel(t *testing.T) {
	for seed := range uint64(80) {
		r := rand.New(rand.NewPCG(seed, 0x6b1dc0b))
		keyN := 1 + r.IntN(300)
		key := func() string { return fmt.Sprintf("k%03d", r.IntN(keyN)) }
		field := func() Field {
			f := Field{TS: Timestamp{Time: uint64(r.IntN(6)), Node: NodeID(r.IntN(3))}}
			if r.IntN(4) == 0 {
				f.Removed = true
			} else {
				f.Value = fmt.Sprint("v", r.IntN(3))
			}
			return f
		}
		var fs Fields
		model := map[string]Field{}
		for step := range 60 {
			switch r.IntN(3) {
			case 0: // With, unconditional
				k, f := key(), field()
				fs = fs.With(k, f)
				model[k] = f
			default: // Join of a delta of 1..many keys
				var d Fields
				dm := map[string]Field{}
				for range 1 + r.IntN([]int{3, 20, 400}[r.IntN(3)]) {
					k, f := key(), field()
					if g, ok := dm[k]; ok && g.Compare(f) >= 0 {
						continue
					}
					d = d.With(k, f)
					dm[k] = f
				}
				var want []string
				for k, f := range dm {
					if g, ok := model[k]; !ok || f.Compare(g) > 0 {
						model[k] = f
						want = append(want, k)
					}
				}
				slices.Sort(want)
				var got []string
				fs, got = fs.Join(d)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: Join changed %v, want %v", seed, step, got, want)
				}
			}
			if fs.Len() != len(model) {
				t.Fatalf("seed %d step %d: Len %d, model holds %d", seed, step, fs.Len(), len(model))
			}
			var keys []string
			for k, f := range fs.All() {
				keys = append(keys, k)
				if model[k] != f {
					t.Fatalf("seed %d step %d: %s = %+v, model %+v", seed, step, k, f, model[k])
				}
			}
			if !slices.IsSorted(keys) || len(keys) != len(model) {
				t.Fatalf("seed %d step %d: All gave %d keys (sorted %v), model %d", seed, step, len(keys), slices.IsSorted(keys), len(model))
			}
			if fk, ok := fs.FirstKey(); ok != (len(keys) > 0) || ok && fk != keys[0] {
				t.Fatalf("seed %d step %d: FirstKey = %q %v, lowest key %v", seed, step, fk, ok, keys[:min(1, len(keys))])
			}
			for k, f := range model {
				if g, ok := fs.Get(k); !ok || g != f {
					t.Fatalf("seed %d step %d: Get(%s) = %+v %v, model %+v", seed, step, k, g, ok, f)
				}
			}
		}
	}
}
