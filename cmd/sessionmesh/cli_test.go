package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs the command line in process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs string // substrings of stdout and stderr
	}{
		{"no command", nil, 2, "", "Usage:"},
		{"help", []string{"help"}, 0, "Commands:", ""},
		{"-h", []string{"-h"}, 0, "Commands:", ""},
		{"help serve", []string{"help", "serve"}, 0, "--bootstrap MULTIADDRS", ""},
		{"help unknown", []string{"help", "nope"}, 2, "", "unknown command"},
		{"unknown", []string{"nope"}, 2, "", `unknown command "nope"`},
		{"version", []string{"version"}, 0, "sessionmesh devel (go1.", ""},
		{"version -h", []string{"version", "-h"}, 0, "Usage: sessionmesh version", ""},
		{"version extra", []string{"version", "x"}, 2, "", "unexpected argument"},
		{"serve -h", []string{"serve", "-h"}, 0, "SESSIONMESH_DATA_DIR", ""},
		{"serve --help", []string{"serve", "--help"}, 0, "flag > env", ""},
		{"serve bad flag", []string{"serve", "--nope"}, 2, "", "flag provided but not defined"},
		{"serve public http", []string{"serve", "--http", "0.0.0.0:7480"}, 2, "", "not a loopback address"},
		{"serve bad durability", []string{"serve", "--durability", "eventually"}, 2, "", "unknown durability"},
		{"serve missing psk", []string{"serve", "--data-dir", filepath.Join(dir, "d"), "--http", "127.0.0.1:0",
			"--listen", "/ip4/127.0.0.1/tcp/0", "--psk-file", filepath.Join(dir, "missing.psk")}, 1, "", "missing.psk"},
		{"keygen", []string{"keygen"}, 2, "", "Usage: sessionmesh keygen"},
		{"keygen -h", []string{"keygen", "-h"}, 0, "Kinds:", ""},
		{"keygen unknown", []string{"keygen", "rsa"}, 2, "", "unknown kind"},
		{"keygen identity", []string{"keygen", "identity", "-o", filepath.Join(dir, "n1", "identity.key")}, 0, "peer id: 12D3KooW", ""},
		{"keygen identity again", []string{"keygen", "identity", "-o", filepath.Join(dir, "n1", "identity.key")}, 1, "", "already exists"},
		{"keygen psk", []string{"keygen", "psk", "-o", filepath.Join(dir, "mesh.psk")}, 0, "mesh.psk", ""},
		{"keygen encryption key", []string{"keygen", "encryption-key", "-o", filepath.Join(dir, "enc.key")}, 0, "enc.key", ""},
		{"keygen api token", []string{"keygen", "api-token", "-o", filepath.Join(dir, "api.token")}, 0, "Bearer", ""},
		{"keygen extra", []string{"keygen", "psk", "-o", filepath.Join(dir, "x"), "y"}, 2, "", "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q on stdout and %q on stderr", code, tc.code, out, errs, tc.out, tc.errs)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(dir, "mesh.psk")); err != nil || !strings.HasPrefix(string(b), "/key/swarm/psk/1.0.0/\n/base16/\n") {
		t.Errorf("psk file: %q, %v", b, err)
	}
}

// Keys made by keygen before the first start are what the daemons run
// with: identities (the peer ids go into --allowed-peers), a pre-shared key
// and an API token.
func TestKeygenThenServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var ids []string
	for _, name := range []string{"a", "b"} {
		code, out, errs := runCLI(t, "keygen", "identity", "-o", filepath.Join(dir, name, "identity.key"))
		if code != 0 {
			t.Fatalf("keygen: %d %s", code, errs)
		}
		ids = append(ids, strings.TrimSpace(out[strings.Index(out, "peer id:")+len("peer id:"):]))
	}
	for _, kind := range []string{"psk", "api-token"} {
		if code, _, errs := runCLI(t, "keygen", kind, "-o", filepath.Join(dir, kind)); code != 0 {
			t.Fatalf("keygen %s: %d %s", kind, code, errs)
		}
	}
	token, err := os.ReadFile(filepath.Join(dir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--psk-file", filepath.Join(dir, "psk"), "--api-token-file", filepath.Join(dir, "api-token"),
		"--allowed-peers", strings.Join(ids, ",")}
	a := startProc(t, "a", filepath.Join(dir, "a"), common...)
	b := startProc(t, "b", filepath.Join(dir, "b"), append(common, "--bootstrap", a.p2pAddr)...)
	if a.peerID != ids[0] || b.peerID != ids[1] {
		t.Errorf("serving as %s and %s, keygen printed %v", a.peerID, b.peerID, ids)
	}
	eventually(t, 20*time.Second, "b ready", func() bool {
		status, _ := b.call("GET", "/readyz", "", "")
		return status == 200
	})
	// The token file is enforced on /v1/ and /metrics, not on probes.
	if status, _ := a.call("GET", "/v1/peers", "", ""); status != 401 {
		t.Errorf("/v1/peers without the bearer token: %d, want 401", status)
	}
	if status, _ := a.call("GET", "/metrics", "", ""); status != 401 {
		t.Errorf("/metrics without the bearer token: %d, want 401", status)
	}
	if status, _ := a.call("GET", "/healthz", "", ""); status != 200 {
		t.Errorf("/healthz: %d, want 200 without a token", status)
	}
	a.bearer = strings.TrimSpace(string(token))
	// Readiness no longer waits for peers: wait for b to show up on a.
	var status int
	var body string
	eventually(t, 20*time.Second, "a lists b (connected)", func() bool {
		status, body = a.call("GET", "/v1/peers", "", "")
		return status == 200 && strings.Contains(body, ids[1]) && strings.Contains(body, `"connected":true`)
	})
	a.stop()
	b.stop()
}
