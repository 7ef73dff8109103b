package transport

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// IdentityFile is the name of the key file inside Config.DataDir.
const IdentityFile = "identity.key"

// loadIdentity returns the host key kept in dir, creating it on first use.
// An empty dir gives a fresh ephemeral key.
func loadIdentity(dir string, log *slog.Logger) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("transport: generate key: %w", err)
		}
		return k, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transport: data dir: %w", err)
	}
	path := filepath.Join(dir, IdentityFile)
	k, err := readIdentity(path, log)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}

	k, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("transport: generate key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("transport: marshal key: %w", err)
	}
	// Write a temporary file (CreateTemp makes it 0600), sync it, then link
	// it into place: the link fails if another process created the key in
	// the meantime, in which case that key wins.
	tmp, err := os.CreateTemp(dir, ".identity.key.tmp-*")
	if err != nil {
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readIdentity(path, log)
		}
		return nil, fmt.Errorf("transport: write key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	log.Info("transport: created identity key", "path", path)
	return k, nil
}

func readIdentity(path string, log *slog.Logger) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: read key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("transport: identity key is readable by others", "path", path, "mode", fi.Mode().Perm().String())
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("transport: key file %s: %w", path, err)
	}
	return k, nil
}
