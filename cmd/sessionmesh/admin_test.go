package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// admin runs an admin command against p (its address and token added).
func admin(t *testing.T, p *proc, tokenFile string, args ...string) (int, string, string) {
	t.Helper()
	args = append(args, "--addr", p.url)
	if tokenFile != "" {
		args = append(args, "--api-token-file", tokenFile)
	}
	return runCLI(t, args...)
}

// The admin commands against real daemons with an API token: status and
// peers, human and JSON, exit codes for a missing token, no daemon, bad
// usage; a member that left is shown unreachable and forgotten by hand.
func TestAdminStatusPeersForget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	if code, _, errs := runCLI(t, "keygen", "api-token", "-o", tokenFile); code != 0 {
		t.Fatal(errs)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	a := startProc(t, "a", filepath.Join(dir, "a"), "--region", "west", "--api-token-file", tokenFile)
	a.bearer = strings.TrimSpace(string(token))
	b := startProc(t, "b", filepath.Join(dir, "b"), "--region", "east", "--bootstrap", a.p2pAddr)
	eventually(t, 20*time.Second, "a and b connected", func() bool { return sees(a, b.peerID, true) && sees(b, a.peerID, true) })
	for range 3 {
		create(t, a, `{"fields": {"k": "v"}}`)
	}

	var st statusView
	var code int
	var out, errs string
	eventually(t, 10*time.Second, "b's region known to a", func() bool {
		code, out, errs = admin(t, a, tokenFile, "status", "--json")
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json is not JSON: %v\n%s", err, out)
		}
		return len(st.Peers) == 1 && st.Peers[0].Region != ""
	})
	if st.Self.ID != a.peerID || st.Self.Region != "west" || st.Members.Known != 1 || st.Members.Reachable != 1 ||
		st.Store.Sessions != 3 || len(st.Store.DigestRoot) != 16 || st.Store.DiskBytes <= 0 || !st.Ready ||
		st.Store.Durability != "none" || len(st.Peers) != 1 || st.Peers[0].ID != b.peerID || st.Peers[0].Region != "east" {
		t.Errorf("status --json: %s", out)
	}
	code, out, errs = admin(t, a, tokenFile, "status")
	for _, want := range []string{a.peerID, "1 known, 1 reachable", "sessions", "digest root", st.Store.DigestRoot, b.peerID, "reachable", "east"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s%s", code, want, out, errs)
		}
	}

	// Exit codes a script can use.
	if code, _, errs := admin(t, a, "", "status"); code != 4 || !strings.Contains(errs, "--api-token-file") {
		t.Errorf("status without the token: exit %d (want 4): %s", code, errs)
	}
	if code, _, errs := runCLI(t, "status", "--addr", "127.0.0.1:1"); code != 3 || !strings.Contains(errs, "no daemon answered") {
		t.Errorf("status of no daemon: exit %d (want 3): %s", code, errs)
	}
	if code, _, _ := runCLI(t, "status", "--nope"); code != 2 {
		t.Errorf("status --nope: exit %d, want 2", code)
	}
	if code, _, _ := admin(t, a, tokenFile, "peers", "forget"); code != 2 {
		t.Errorf("peers forget without an id: exit %d, want 2", code)
	}
	if code, _, errs := admin(t, a, tokenFile, "peers", "forget", "not-a-peer-id"); code != 1 || !strings.Contains(errs, "400") {
		t.Errorf("peers forget of a bad id: exit %d, want 1: %s", code, errs)
	}

	// sync: a round now, with b (the only peer) or named.
	for _, args := range [][]string{{"sync"}, {"sync", b.peerID}} {
		code, out, errs := admin(t, a, tokenFile, args...)
		if code != 0 || !strings.Contains(out, b.peerID) || !(strings.Contains(out, "in sync with") || strings.Contains(out, "repaired with")) {
			t.Errorf("%v: exit %d: %s%s", args, code, out, errs)
		}
	}
	code, out, errs = admin(t, a, tokenFile, "sync", "--json")
	var rep struct{ Peer, Result string }
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Peer != b.peerID || rep.Result != "in_sync" {
		t.Errorf("sync --json: exit %d %v: %s%s", code, err, out, errs)
	}
	if code, _, errs := admin(t, a, tokenFile, "sync", "12D3KooWAAeDaF9srFLtC5MT4tTjMoCMGTV9dn5ntFRNBdimWDXK"); code != 1 || !strings.Contains(errs, "not connected") {
		t.Errorf("sync with a stranger: exit %d: %s", code, errs)
	}

	// b leaves: a shows it unreachable, then forgets it by hand.
	b.stop()
	eventually(t, 10*time.Second, "a showing b unreachable", func() bool {
		code, out, _ := admin(t, a, tokenFile, "peers")
		return code == 0 && strings.Contains(out, b.peerID) && strings.Contains(out, "UNREACHABLE")
	})
	code, out, errs = admin(t, a, tokenFile, "peers", "--json")
	var pv struct{ Peers []member }
	if err := json.Unmarshal([]byte(out), &pv); code != 0 || err != nil || len(pv.Peers) != 1 || pv.Peers[0].Connected ||
		pv.Peers[0].Since == nil || pv.Peers[0].LastSeen == nil {
		t.Errorf("peers --json: exit %d %v: %s%s", code, err, out, errs)
	}
	if code, out, errs := admin(t, a, tokenFile, "peers", "forget", b.peerID); code != 0 || !strings.Contains(out, "forgot "+b.peerID) {
		t.Fatalf("peers forget: exit %d: %s%s", code, out, errs)
	}
	if code, out, _ := admin(t, a, tokenFile, "peers"); code != 0 || strings.Contains(out, b.peerID) {
		t.Errorf("b still listed after forget: %s", out)
	}
	if code, _, errs := admin(t, a, tokenFile, "peers", "forget", b.peerID); code != 1 || !strings.Contains(errs, "not a known member") {
		t.Errorf("forgetting twice: exit %d: %s", code, errs)
	}
	_, metrics := a.call("GET", "/metrics", "", "")
	for _, m := range []string{"sessionmesh_transport_members_forgotten_total 1", "sessionmesh_transport_members 0",
		"sessionmesh_transport_members_reachable 0", "sessionmesh_transport_dial_attempts_total", "sessionmesh_store_sessions 3"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}

// backup of a running daemon, restore into an empty data directory, and a
// new peer started there serves the same sessions, destroyed ones
// included, with the same digest root. The store is encrypted, so is the
// backup: restore needs the key.
func TestAdminBackupRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "enc.key")
	if code, _, errs := runCLI(t, "keygen", "encryption-key", "-o", keyFile); code != 0 {
		t.Fatal(errs)
	}
	a := startProc(t, "a", filepath.Join(dir, "a"), "--encryption-key-file", keyFile)
	want := make(map[string]map[string]string)
	var destroyed []string
	for i := range 40 {
		tok := create(t, a, fmt.Sprintf(`{"fields": {"user": "u%d", "cart": "%d"}}`, i, i))
		if i%8 == 0 {
			if code, body := a.call("DELETE", "/v1/session", tok, ""); code != 204 {
				t.Fatalf("destroy: %d %s", code, body)
			}
			destroyed = append(destroyed, tok)
			continue
		}
		want[tok] = map[string]string{"user": fmt.Sprintf("u%d", i), "cart": fmt.Sprint(i)}
	}

	file := filepath.Join(dir, "mesh.backup")
	code, out, errs := admin(t, a, "", "backup", file)
	if code != 0 || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("backup: exit %d: %s%s", code, out, errs)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("backup left %s.partial", file)
	}
	if code, _, errs := admin(t, a, "", "backup", file); code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("backup over an existing file: exit %d: %s", code, errs)
	}
	root := statusOf(a).Store.DigestRoot

	restored := filepath.Join(dir, "restored")
	if code, _, errs := runCLI(t, "restore", file, "--data-dir", restored); code != 1 || !strings.Contains(errs, "encrypted") {
		t.Errorf("restore of an encrypted backup without the key: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(restored); !os.IsNotExist(err) {
		t.Errorf("a failed restore left %s behind", restored)
	}
	if code, _, _ := runCLI(t, "restore", file); code != 2 {
		t.Errorf("restore without --data-dir: exit %d, want 2", code)
	}
	code, out, errs = runCLI(t, "restore", file, "--data-dir", restored, "--encryption-key-file", keyFile, "--json")
	var info struct {
		Sessions   int    `json:"sessions"`
		DigestRoot string `json:"digest_root"`
	}
	if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.Sessions != 40 || info.DigestRoot != root {
		t.Fatalf("restore: exit %d %v: %s%s (want 40 sessions, root %s)", code, err, out, errs, root)
	}
	if code, _, errs := runCLI(t, "restore", file, "--data-dir", restored, "--encryption-key-file", keyFile); code != 1 || !strings.Contains(errs, "not empty") {
		t.Errorf("restore into a non-empty directory: exit %d: %s", code, errs)
	}

	// A new peer on the restored directory serves what a had.
	a.stop()
	c := startProc(t, "c", restored, "--encryption-key-file", keyFile)
	if c.peerID == a.peerID {
		t.Errorf("the restored peer has a's identity: two peers would share it")
	}
	for tok, f := range want {
		if !hasFields(c, tok, f) {
			code, body := c.call("GET", "/v1/session", tok, "")
			t.Errorf("restored peer: session missing or different: %d %s, want %v", code, body, f)
		}
	}
	for _, tok := range destroyed {
		if code, body := c.call("GET", "/v1/session", tok, ""); code != 404 {
			t.Errorf("restored peer: destroyed session back: %d %s", code, body)
		}
	}
	if st := statusOf(c); st.Store.DigestRoot != root || st.Store.Sessions != 40 || !st.Store.Encrypted {
		t.Errorf("restored peer: %+v, want root %s", st.Store, root)
	}
	tok := create(t, c, `{"fields": {"after": "restore"}}`)
	if !hasFields(c, tok, map[string]string{"after": "restore"}) {
		t.Error("the restored peer does not take writes")
	}
	c.stop()
}

// Where the admin commands find the daemon and its token: flag, then
// SESSIONMESH_ADDR, then the serve config (file, then SESSIONMESH_HTTP).
func TestAdminClientSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api.token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "sessionmesh.json")
	cfg := fmt.Sprintf(`{"http": "0.0.0.0:9001", "api_token_file": %q}`, tokenFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tc := range []struct {
		name       string
		flags      adminFlags
		env        map[string]string
		base, auth string
	}{
		{"default", adminFlags{}, nil, "http://127.0.0.1:7480", ""},
		{"flag", adminFlags{addr: "127.0.0.5:1234"}, map[string]string{EnvAddr: "127.0.0.6:1"}, "http://127.0.0.5:1234", ""},
		{"flag URL", adminFlags{addr: "https://sm.example.net:8443/"}, nil, "https://sm.example.net:8443", ""},
		{"env", adminFlags{}, map[string]string{EnvAddr: "127.0.0.6:1", "SESSIONMESH_HTTP": "127.0.0.7:2"}, "http://127.0.0.6:1", ""},
		{"serve's env", adminFlags{}, map[string]string{"SESSIONMESH_HTTP": "127.0.0.7:2"}, "http://127.0.0.7:2", ""},
		{"config file: every interface is reached on loopback", adminFlags{config: cfgFile}, nil,
			"http://127.0.0.1:9001", "0123456789abcdef0123456789abcdef"},
		{"config from env", adminFlags{}, map[string]string{"SESSIONMESH_CONFIG": cfgFile}, "http://127.0.0.1:9001", "0123456789abcdef0123456789abcdef"},
		{"IPv6 any", adminFlags{addr: "[::]:7480"}, nil, "http://[::1]:7480", ""},
	} {
		c, err := tc.flags.client(env(tc.env))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.base != tc.base || c.bearer != tc.auth {
			t.Errorf("%s: base %q token %q, want %q %q", tc.name, c.base, c.bearer, tc.base, tc.auth)
		}
	}
	for _, bad := range []adminFlags{{addr: "ftp://x:1"}, {addr: "nohost"}, {config: filepath.Join(dir, "missing.json")}, {tokenFile: filepath.Join(dir, "missing.token")}} {
		if _, err := bad.client(env(nil)); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"help", "status"}, 0, "Exit codes"},
		{[]string{"status", "extra"}, 2, ""},
		{[]string{"backup"}, 2, ""},
		{[]string{"restore"}, 2, ""},
		{[]string{"sync", "a", "b"}, 2, ""},
		{[]string{"peers", "-h"}, 0, "peers forget ID"},
		{[]string{"restore", filepath.Join(dir, "missing.backup"), "--data-dir", filepath.Join(dir, "new")}, 1, ""},
	} {
		if code, out, errs := runCLI(t, tc.args...); code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%v: exit %d (want %d): %s%s", tc.args, code, tc.code, out, errs)
		}
	}
}
