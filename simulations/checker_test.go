package simulations

import (
	"strings"
	"testing"
)

// final judges each node's store from the writes gathered once for every
// node, a block of sessions at a time (checker.judged), looking each key
// of a state up once: it must find exactly what missing, write by write
// through the log, finds. The run
// has values corrupted in flight, so that both kinds of finding a merge
// bug leaves (another value under a write's timestamp; a newer value no
// client wrote) are among those compared.
func TestFinalFindsWhatMissingFinds(t *testing.T) {
	sc, err := LoadScenario("three-region-split-heal")
	if err != nil {
		t.Fatal(err)
	}
	r, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(r, 1, corruptValuesTo(t, "ap-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	e.run()
	if e.err != nil {
		t.Fatal(e.err)
	}
	c := e.chk
	c.sweep()
	_, counted, _ := c.countedWrites()
	// Small blocks: sessions across many of them.
	var found []finding
	blocks := 0
	for _, n := range e.nodes {
		if !n.up {
			continue
		}
		var j judgedWrites
		for k := 0; k < len(c.sessions); k = j.end {
			c.judged(&j, counted, k, 100)
			found = c.finalNode(found, n, &j)
			blocks++
		}
		found = append(found, finding{session: -1}) // the next node's
	}
	if blocks < 10*len(e.nodes) {
		t.Fatalf("%d blocks", blocks)
	}
	whys := map[string]int{}
	for _, n := range e.nodes {
		if !n.up {
			continue
		}
		type key struct {
			session int
			op      int32
		}
		got := map[key]string{}
		for ; found[0].session >= 0; found = found[1:] {
			if f := found[0]; f.op >= 0 {
				got[key{f.session, f.op}] = f.why
			}
		}
		found = found[1:]
		ms := e.localTime(n).UnixMilli()
		for k, h := range c.sessions {
			st, err := n.store.Get(h.id)
			if ms >= h.absolute || err != nil || st.IsDestroyed() {
				continue
			}
			for _, i := range h.ops {
				if !counted[i] {
					continue
				}
				want := c.missing(h, st, c.ops.at(int(i)))
				if g := got[key{k, i}]; g != want {
					t.Fatalf("%s, session %s, %s: final found %q, missing %q", n.name, h.id, c.describe(c.ops.at(int(i))), g, want)
				}
				delete(got, key{k, i})
				switch {
				case want == "field holds another value under the write's timestamp":
					whys["another value"]++
				case strings.HasPrefix(want, "superseded by ") && strings.HasSuffix(want, ", which no client wrote"):
					whys["no client wrote"]++
				case want != "":
					whys[want]++
				}
			}
		}
		for k, why := range got {
			t.Fatalf("%s: final found %q for write %d of session %d, a live state missing does not fault", n.name, why, k.op, k.session)
		}
	}
	if whys["another value"] == 0 || whys["no client wrote"] == 0 {
		t.Fatalf("the corrupted values did not make both kinds of finding: %v", whys)
	}
	t.Logf("findings compared: %v", whys)
}
