package simulations

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestTraceLogEncodesAsJSON: the trace log gives back the events it took,
// and encodes them byte for byte as encoding/json does (the fingerprint
// hashes that form), skipping the kind asked.
func TestTraceLogEncodesAsJSON(t *testing.T) {
	evs := []TraceEvent{
		{T: Duration(1500 * time.Microsecond), Kind: "op", Node: "us-1", Op: "set", Session: "abc", Key: "k1", Result: "ok"},
		{T: Duration(time.Hour + 3*time.Nanosecond), Kind: "rejected", Node: "eu-1", Peer: "ap-1", Detail: `node: gossip from "ap-1": <bad> & worse`},
		{T: Duration(-2 * time.Second), Kind: "violation", Fault: "lost_writes", Detail: "x"},
		{Kind: "", Detail: "tab\there, nl\n, del\x7f, é, \u2028, invalid \xff"},
		{T: Duration(42), Kind: "op", Node: "us-1", Op: "set", Session: "abc", Key: "k1", Result: "ok"},
	}
	var l traceLog
	for _, ev := range evs {
		l.add(ev)
	}
	if got := l.all(); !reflect.DeepEqual(got, evs) {
		t.Fatalf("all() = %+v\nwant %+v", got, evs)
	}
	for _, skip := range []string{"violation", "absent"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		for _, ev := range evs {
			if ev.Kind != skip {
				if err := enc.Encode(ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		var got bytes.Buffer
		l.encode(&got, skip)
		if got.String() != want.String() {
			t.Fatalf("skip %q: encoded\n%s\nwant\n%s", skip, got.String(), want.String())
		}
	}
}
