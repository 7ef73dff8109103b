package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/sessionmesh/sessionmesh/transport"
)

// pskHeader starts a pre-shared key file in the libp2p format, which
// go-ipfs's swarm.key and other libp2p tools share.
const pskHeader = "/key/swarm/psk/1.0.0/\n/base16/\n"

// ReadPSK reads a pre-shared key file in the libp2p format: the line
// "/key/swarm/psk/1.0.0/", an encoding line ("/base16/", "/base64/" or
// "/bin/") and the 32-byte key.
func ReadPSK(path string, log *slog.Logger) ([]byte, error) {
	data, err := readSecret(path, log)
	if err != nil {
		return nil, err
	}
	key, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: pre-shared key file %s: %v (want the libp2p format written by `sessionmesh keygen psk`)", ErrConfig, path, err)
	}
	return key, nil
}

// ReadEncryptionKey reads a key for encryption at rest: 16, 24 or 32 bytes,
// either hex-encoded (surrounding white space ignored) or raw.
func ReadEncryptionKey(path string, log *slog.Logger) ([]byte, error) {
	data, err := readSecret(path, log)
	if err != nil {
		return nil, err
	}
	if k, err := hex.DecodeString(strings.TrimSpace(string(data))); err == nil && validAESKey(len(k)) {
		return k, nil
	}
	if validAESKey(len(data)) {
		return data, nil
	}
	return nil, fmt.Errorf("%w: encryption key file %s: want 16, 24 or 32 bytes, hex-encoded or raw", ErrConfig, path)
}

func validAESKey(n int) bool { return n == 16 || n == 24 || n == 32 }

// ReadAPIToken reads the bearer token of the HTTP API: the file's content
// without surrounding white space, at least MinAPITokenLen characters.
func ReadAPIToken(path string, log *slog.Logger) (string, error) {
	data, err := readSecret(path, log)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < MinAPITokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%w: API token file %s: want one token of at least %d characters without spaces", ErrConfig, path, MinAPITokenLen)
	}
	return tok, nil
}

// readSecret reads a key file, warning when others may read it.
func readSecret(path string, log *slog.Logger) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("key file is readable by others", "path", path, "mode", fi.Mode().Perm().String())
	}
	return data, nil
}

// GenerateIdentity writes a new Ed25519 peer identity to path, in the format
// the transport keeps in <data dir>/identity.key, and returns its peer id.
// It refuses to overwrite an existing file.
func GenerateIdentity(path string) (peer.ID, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("daemon: generate key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("daemon: marshal key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("daemon: peer id: %w", err)
	}
	return id, writeNew(path, raw)
}

// IdentityPeerID returns the peer id of an identity key file.
func IdentityPeerID(path string) (peer.ID, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("daemon: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return "", fmt.Errorf("daemon: identity key %s: %w", path, err)
	}
	return peer.IDFromPrivateKey(k)
}

// GeneratePSK writes a new 32-byte pre-shared key to path in the libp2p
// format (base16) that ReadPSK reads. It refuses to overwrite a file.
func GeneratePSK(path string) error {
	var k [transport.PSKSize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("daemon: generate key: %w", err)
	}
	return writeNew(path, []byte(pskHeader+hex.EncodeToString(k[:])+"\n"))
}

// GenerateEncryptionKey writes a new 32-byte key for encryption at rest to
// path, hex-encoded. It refuses to overwrite a file.
func GenerateEncryptionKey(path string) error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("daemon: generate key: %w", err)
	}
	return writeNew(path, []byte(hex.EncodeToString(k[:])+"\n"))
}

// GenerateAPIToken writes a new bearer token (32 random bytes, hex) to
// path. It refuses to overwrite a file.
func GenerateAPIToken(path string) error {
	return GenerateEncryptionKey(path) // same shape: 64 hex characters
}

// writeNew creates path with mode 0600 (and its directory with 0700) and
// writes data, failing if the file exists.
func writeNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("daemon: %s already exists; not overwriting a key", path)
	}
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	return nil
}
