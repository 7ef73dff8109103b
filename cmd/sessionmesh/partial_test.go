package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Three daemons of one region with --replicas 1: each session ends up
// stored on exactly one of them, every daemon serves every session over
// the HTTP API, and status shows the slots split between them.
func TestServeReplicas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startProc(t, "a", filepath.Join(dir, "a"), "--region", "eu", "--replicas", "1")
	b := startProc(t, "b", filepath.Join(dir, "b"), "--region", "eu", "--replicas", "1", "--bootstrap", a.p2pAddr)
	c := startProc(t, "c", filepath.Join(dir, "c"), "--region", "eu", "--replicas", "1", "--bootstrap", a.p2pAddr)
	all := []*proc{a, b, c}
	status := func(p *proc) statusView {
		t.Helper()
		code, body := p.call("GET", "/v1/status", "", "")
		var st statusView
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("%s status: %d %s", p.name, code, body)
		}
		return st
	}
	eventually(t, 30*time.Second, "placement over the three daemons", func() bool {
		held := 0
		for _, p := range all {
			st := status(p)
			if st.Placement.RegionMembers != 3 || st.Placement.Replicas != "1" {
				return false
			}
			held += st.Placement.SlotsHeld
		}
		return held == placementSlots
	})
	var tokens []string
	for i := range 30 {
		tokens = append(tokens, create(t, all[i%3], `{"fields": {"user": "u"}}`))
	}
	eventually(t, 30*time.Second, "one stored copy of each session, nothing left to hand off", func() bool {
		stored := 0
		for _, p := range all {
			st := status(p)
			if st.Placement.SlotsMoving != 0 {
				return false
			}
			stored += st.Store.Sessions
		}
		return stored == len(tokens)
	})
	for _, p := range all {
		for _, tok := range tokens {
			if !hasFields(p, tok, map[string]string{"user": "u"}) {
				t.Fatalf("%s does not serve a session it does not hold", p.name)
			}
		}
	}
	code, out, errs := admin(t, a, "", "status")
	if code != 0 || !strings.Contains(out, "replication") || !strings.Contains(out, "1 per region, over 3 peers here") {
		t.Errorf("status: exit %d:\n%s%s", code, out, errs)
	}
}

// placementSlots is the number of slots (placement.Slots).
const placementSlots = 4096
