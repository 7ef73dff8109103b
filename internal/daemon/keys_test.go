package daemon

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/transport"
)

var discard = slog.New(slog.DiscardHandler)

type nopHandler struct{}

func (nopHandler) HandleGossip(peer.ID, []byte) {}
func (nopHandler) HandleDirect(peer.ID, []byte) {}
func (nopHandler) PeerUp(peer.ID)               {}
func (nopHandler) PeerDown(peer.ID)             {}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// keygen's identity is the file the transport keeps in its data dir.
func TestGenerateIdentity(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, transport.IdentityFile)
	id, err := GenerateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	if got, err := IdentityPeerID(path); err != nil || got != id {
		t.Errorf("IdentityPeerID = %v, %v; want %v", got, err, id)
	}
	if _, err := GenerateIdentity(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrite: %v", err)
	}

	cfg := transport.DefaultConfig()
	cfg.DataDir = dir
	tr, err := transport.New(t.Context(), cfg, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.ID() != id {
		t.Errorf("transport runs as %v, keygen printed %v", tr.ID(), id)
	}
}

func TestPSK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.psk")
	if err := GeneratePSK(path); err != nil {
		t.Fatal(err)
	}
	k, err := ReadPSK(path, discard)
	if err != nil || len(k) != transport.PSKSize {
		t.Fatalf("ReadPSK = %d bytes, %v", len(k), err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	if err := GeneratePSK(path); err == nil {
		t.Error("GeneratePSK overwrote a key")
	}
	// The other encodings of the libp2p format.
	raw := bytes.Repeat([]byte{7}, 32)
	b64 := writeFile(t, "b64.psk", "/key/swarm/psk/1.0.0/\n/base64/\n"+base64.StdEncoding.EncodeToString(raw)+"\n")
	if k, err := ReadPSK(b64, discard); err != nil || !bytes.Equal(k, raw) {
		t.Errorf("base64 psk: %x, %v", k, err)
	}
	for name, content := range map[string]string{
		"no header": strings.Repeat("ab", 32),
		"short":     "/key/swarm/psk/1.0.0/\n/base16/\nabcd\n",
		"encoding":  "/key/swarm/psk/1.0.0/\n/base32/\n" + strings.Repeat("ab", 32),
	} {
		if _, err := ReadPSK(writeFile(t, "bad.psk", content), discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEncryptionKeyAndToken(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "enc.key")
	if err := GenerateEncryptionKey(path); err != nil {
		t.Fatal(err)
	}
	if k, err := ReadEncryptionKey(path, discard); err != nil || len(k) != 32 {
		t.Fatalf("generated key: %d bytes, %v", len(k), err)
	}
	for content, n := range map[string]int{
		strings.Repeat("0f", 16) + "\n": 16,
		strings.Repeat("0f", 24):        24,
		strings.Repeat("\x01", 16):      16, // raw
		strings.Repeat("\x01", 32):      32,
		strings.Repeat("0f", 20):        0,
		strings.Repeat("\x01", 20):      0,
		"":                              0,
	} {
		k, err := ReadEncryptionKey(writeFile(t, "k", content), discard)
		if (err == nil) != (n > 0) || len(k) != n {
			t.Errorf("key file %q: %d bytes, %v; want %d", content, len(k), err, n)
		}
	}

	tokPath := filepath.Join(t.TempDir(), "api.token")
	if err := GenerateAPIToken(tokPath); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadAPIToken(tokPath, discard); err != nil || len(tok) != 64 {
		t.Errorf("generated token: %q, %v", tok, err)
	}
	for _, bad := range []string{"", "short", "two tokens of some length"} {
		if _, err := ReadAPIToken(writeFile(t, "t", bad), discard); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
	if _, err := ReadAPIToken(filepath.Join(t.TempDir(), "missing"), discard); err == nil {
		t.Error("missing token file accepted")
	}
}
