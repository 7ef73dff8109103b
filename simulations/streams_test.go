package simulations

import "testing"

// A stream is fixed by the seed, its kind and its node names, and by
// nothing else: not by the other streams drawn from, nor by the order of
// the names' concatenation.
func TestStreamsAreNamed(t *testing.T) {
	draw := func(e *engine, kind string, names ...string) [4]uint64 {
		r := e.stream(kind, names...)
		return [4]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
	}
	a, b := &engine{seed: 7}, &engine{seed: 7}
	first := draw(a, streamLink, "us-1", "eu-1")
	// Other streams drawn from in between change nothing.
	for range 100 {
		draw(b, streamWorkload, "us-1")
		draw(b, streamLink, "eu-1", "us-1")
	}
	if again := draw(b, streamLink, "us-1", "eu-1"); again != first {
		t.Fatalf("the same stream of the same seed differs: %x then %x", first, again)
	}
	distinct := map[[4]uint64]string{}
	for _, c := range []struct {
		kind  string
		names []string
	}{
		{streamLink, []string{"us-1", "eu-1"}},
		{streamLink, []string{"eu-1", "us-1"}}, // the other direction
		{streamDial, []string{"us-1", "eu-1"}}, // another kind, same names
		{streamWorkload, []string{"us-1"}},
		{streamWorkload, []string{"us-"}},
		{streamWorkload, []string{"a", "bc"}},
		{streamWorkload, []string{"ab", "c"}}, // same bytes, split elsewhere
		{streamFaults, nil},
	} {
		d := draw(a, c.kind, c.names...)
		if prev, ok := distinct[d]; ok {
			t.Fatalf("streams %s %q and %s draw the same", c.kind, c.names, prev)
		}
		distinct[d] = c.kind
	}
	if draw(&engine{seed: 8}, streamLink, "us-1", "eu-1") == first {
		t.Fatal("another seed draws the same stream")
	}
}
