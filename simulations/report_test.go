package simulations

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFmtMsPrintsMilliseconds(t *testing.T) {
	ms := epoch.Add(62345 * time.Millisecond).UnixMilli()
	if got := fmtMs(ms); got != "1m2.345s" {
		t.Fatalf("fmtMs = %q, want 1m2.345s", got)
	}
}

// Session ids are hashes of seeded tokens: another seed covers other
// buckets, and a planted bug in one bucket cannot hide behind a fixed id
// sequence.
func TestSessionIDsAreSeededTokens(t *testing.T) {
	sc, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(seed uint64) map[string]bool {
		res, err := Run(sc, seed)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, ev := range res.Trace {
			if ev.Op == "create" && ev.Result == "ok" {
				if len(ev.Session) != 43 {
					t.Fatalf("id %q is not a SHA-256 in base64url", ev.Session)
				}
				out[ev.Session] = true
			}
		}
		if res.Figures.Buckets == 0 || int64(res.Figures.Buckets) > res.Figures.Sessions {
			t.Fatalf("bucket coverage %d of %d sessions", res.Figures.Buckets, res.Figures.Sessions)
		}
		return out
	}
	a, b := ids(1), ids(2)
	if len(a) == 0 {
		t.Fatal("no sessions created")
	}
	for id := range a {
		if b[id] {
			t.Fatalf("seeds 1 and 2 share session id %s", id)
		}
	}
}

// A failing report puts the verdict and the plots first and folds the
// violations below them; the fault shading has a legend; verdict.json names
// the code.
func TestFailingReportLayout(t *testing.T) {
	h := &hooks{skipApply: func(e *engine, n int, op opKind) bool { return e.nodes[n].name == "a-1" && op == opSet }}
	sc, err := Parse([]byte(minimal + "faults: [{at: 2s, for: 3s, partition: [[a], [b]]}]\nexpect: {lost_writes: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(sc, 1, h)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict.Pass {
		t.Fatal("the planted bug was not caught")
	}
	var b bytes.Buffer
	if err := res.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	verdict, plot, viol := strings.Index(html, "<h2>Verdict"), strings.Index(html, "<svg"), strings.Index(html, "<h2>Violations")
	if verdict < 0 || plot < verdict || viol < plot || !strings.Contains(html[viol:], "<details>") {
		t.Fatalf("order: verdict at %d, first plot at %d, violations at %d (folded: %v)", verdict, plot, viol, strings.Contains(html, "<details>"))
	}
	if !strings.Contains(html, "partition (shaded)") {
		t.Fatal("no legend for the partition's shading")
	}
	// A node's version entry (its key starts with a NUL) named in a
	// violation is shown escaped: a NUL in a page is a parse error.
	res.Violations = append(res.Violations, Violation{Check: CheckLostWrites, Session: "s", Detail: "set " + printableKey("\x00sm/v/0000000000000003") + "@x; raw \x00 too"})
	b.Reset()
	if err := res.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(b.Bytes(), 0) >= 0 || !strings.Contains(b.String(), `set &#34;\x00sm/v/0000000000000003&#34;@x; raw \x00 too`) {
		t.Fatalf("a violation with a NUL byte is not shown escaped")
	}
	var vb bytes.Buffer
	if err := res.WriteVerdict(&vb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vb.String(), `"code"`) {
		t.Fatalf("verdict.json has no code: %s", vb.String())
	}
}
