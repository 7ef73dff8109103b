package transport

import (
	"os"
	"path/filepath"
	"testing"
)

// The peer id survives a restart with the same DataDir, and the key file
// is private.
func TestIdentityPersists(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node") // New creates it
	cfg := testConfig()
	cfg.DataDir = dir

	first := startTransport(t, cfg, &recorder{})
	id := first.ID()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}

	second := startTransport(t, cfg, &recorder{})
	if second.ID() != id {
		t.Errorf("peer id changed across restarts: %s then %s", id, second.ID())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != IdentityFile && e.Name() != MembersFile {
			t.Errorf("data dir holds %s, want only %s and %s", e.Name(), IdentityFile, MembersFile)
		}
	}

	// Without a DataDir every start is a new identity.
	a := startTransport(t, testConfig(), &recorder{})
	b := startTransport(t, testConfig(), &recorder{})
	if a.ID() == b.ID() {
		t.Error("ephemeral identities collide")
	}
}

func TestIdentityCorrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IdentityFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.DataDir = dir
	if tr, err := New(t.Context(), cfg, &recorder{}); err == nil {
		tr.Close()
		t.Fatal("New accepted a corrupt key file")
	}
}
