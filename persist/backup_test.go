package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// fillStore writes n sessions with a few fields each, and destroys every
// tenth, so that tombstones are backed up too.
func fillStore(t *testing.T, s *Store, n int) []string {
	t.Helper()
	var ids []string
	c := crdt.NewClock(7, 0)
	for i := range n {
		id := fmt.Sprintf("session-%04d", i)
		ids = append(ids, id)
		x := newSession(id, 7, t0, 3)
		apply(t, s, t0, x)
		if i%10 == 0 {
			apply(t, s, t0, x.Destroy(c.Now(t0.Add(1))))
		}
	}
	return ids
}

func sameSessions(t *testing.T, want, got *Store, ids []string) {
	t.Helper()
	if want.Digests().Root != got.Digests().Root || want.Len() != got.Len() {
		t.Fatalf("restored store: root %x, %d sessions; want %x, %d", got.Digests().Root, got.Len(), want.Digests().Root, want.Len())
	}
	for _, id := range ids {
		if a, b := encoded(t, mustGet(t, want, id)), encoded(t, mustGet(t, got, id)); a != b {
			t.Fatalf("session %s differs after restore", id)
		}
	}
}

func TestBackupRestore(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			o := testOptions(t.TempDir())
			if encrypted {
				o.EncryptionKey = bytes.Repeat([]byte{0x42}, 32)
			}
			src := openStore(t, o)
			ids := fillStore(t, src, 300)
			if src.Len() != 300 {
				t.Fatalf("Len = %d, want 300", src.Len())
			}

			// Writes during the backup do not disturb it: it holds the
			// store as of its start, or later, never a torn state.
			var buf bytes.Buffer
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					apply(t, src, t0, newSession(fmt.Sprintf("late-%d", i), 8, t0, 1))
				}
			}()
			info, err := src.Backup(&buf)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if info.Bytes != int64(buf.Len()) || info.Encrypted != encrypted {
				t.Errorf("backup info %+v, file of %d bytes", info, buf.Len())
			}
			if encrypted && bytes.Contains(buf.Bytes(), []byte("value-1-session-0001")) {
				t.Error("an encrypted store's backup holds a field value in clear")
			}
			if !encrypted && !bytes.Contains(buf.Bytes(), []byte("value-1-session-0001")) {
				t.Error("the backup lacks a field value (checking the test's premise)")
			}
			file := buf.Bytes()

			ro := testOptions(filepath.Join(t.TempDir(), "restored"))
			ro.EncryptionKey = o.EncryptionKey
			got, err := Restore(bytes.NewReader(file), ro)
			if err != nil {
				t.Fatal(err)
			}
			if got.Sessions < 300 || got.Sessions > 350 || got.Bytes != int64(len(file)) {
				t.Errorf("restore info %+v", got)
			}
			dst := openStore(t, ro)
			if dst.Len() != got.Sessions || dst.Digests().Root != got.Root {
				t.Errorf("reopened: %d sessions root %x, restore said %+v", dst.Len(), dst.Digests().Root, got)
			}
			// The late writes may or may not be in; the first 300 are,
			// exactly. Compare without them.
			for i := range 50 {
				id := fmt.Sprintf("late-%d", i)
				if _, err := dst.Get(id); err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatal(err)
				} else if err != nil {
					apply(t, dst, t0, mustGet(t, src, id))
				}
			}
			sameSessions(t, src, dst, ids)
			if !mustGet(t, dst, ids[0]).IsDestroyed() || mustGet(t, dst, ids[1]).IsDestroyed() {
				t.Error("tombstones not restored as tombstones")
			}
			// The restored store takes writes.
			apply(t, dst, t0, newSession("after-restore", 9, t0, 1))
			mustGet(t, dst, "after-restore")
		})
	}
}

func TestRestoreRefuses(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	backupOf := func(key []byte) []byte {
		o := testOptions(t.TempDir())
		o.EncryptionKey = key
		s := openStore(t, o)
		fillStore(t, s, 50)
		var buf bytes.Buffer
		if _, err := s.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	plain, sealed := backupOf(nil), backupOf(key)
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name string
		file []byte
		key  []byte
		want error
	}{
		{"not a backup", []byte("hello\n"), nil, ErrBadBackup},
		{"empty", nil, nil, ErrBadBackup},
		{"truncated", plain[:len(plain)-10], nil, ErrBadBackup},
		{"cut at a frame", plain[:len(plain)-(4+1+32)], nil, ErrBadBackup},
		{"damaged", flip(plain, len(plain)/2), nil, ErrBadBackup},
		{"trailing data", append(bytes.Clone(plain), 'x'), nil, ErrBadBackup},
		{"other format", bytes.Replace(plain, formatMarker, []byte("sessionmesh/persist/9"), 1), nil, ErrBadBackup},
		{"encrypted without key", sealed, nil, ErrBadKey},
		{"encrypted with another key", sealed, bytes.Repeat([]byte{0x43}, 32), ErrBadBackup},
		{"encrypted damaged", flip(sealed, len(sealed)/2), key, ErrBadBackup},
		{"encrypted truncated", sealed[:len(sealed)-60], key, ErrBadBackup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			o := testOptions(dir)
			o.EncryptionKey = tc.key
			_, err := Restore(bytes.NewReader(tc.file), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Restore: %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed restore left %s behind (%v)", dir, err)
			}
		})
	}

	t.Run("not empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Restore(bytes.NewReader(plain), testOptions(dir)); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("Restore into a non-empty directory: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "mine" {
			t.Errorf("the directory's file was touched: %q %v", b, err)
		}
	})
	t.Run("empty dir that exists, damaged file", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Restore(bytes.NewReader(flip(plain, len(plain)/2)), testOptions(dir)); !errors.Is(err, ErrBadBackup) {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("a failed restore left %d entries in the empty directory", len(entries))
		}
	})
	t.Run("in memory", func(t *testing.T) {
		s := openStore(t, testOptions(""))
		var buf bytes.Buffer
		if _, err := s.Backup(&buf); !errors.Is(err, errors.ErrUnsupported) || buf.Len() != 0 {
			t.Errorf("backup of a store in memory: %v, %d bytes written", err, buf.Len())
		}
	})
}

// A damaged length in Badger's stream is refused before anything that
// size is allocated: Badger's Load sizes its buffer by a record's length
// before reading it, and an unencrypted backup's checksum is only checked
// at its end, so 120 bytes declaring 1 GiB allocated it, and one declaring
// 2^50 bytes crashed the process. A file that is not a backup is refused
// after its first 64 KiB, not read whole in search of a newline.
func TestRestoreRefusesDeclaredLengths(t *testing.T) {
	frame := func(kind byte, data []byte) []byte {
		body := append([]byte{kind}, data...)
		return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	head := backupMagic + "\n" + `{"format":"` + string(formatMarker) + `","created":"2026-12-01T00:00:00Z","encrypted":false}` + "\n"
	declaring := func(size uint64, data int) []byte {
		d := binary.LittleEndian.AppendUint64(nil, size)
		d = append(d, bytes.Repeat([]byte{0x0a}, data)...)
		return append([]byte(head), frame(frameData, d)...)
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"1 GiB declared", bytes.NewReader(declaring(1<<30, 0))},
		{"2^50 declared", bytes.NewReader(declaring(1<<50, 100))},
		{"over the bound", bytes.NewReader(declaring(maxLoadRecord+1, 0))},
		{"2^64-1 declared", bytes.NewReader(declaring(^uint64(0), 10))},
		{"no newline", io.LimitReader(repeatReader('x'), 256<<20)},
		{"header line without end", io.MultiReader(strings.NewReader(backupMagic+"\n"), io.LimitReader(repeatReader('{'), 256<<20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			_, err := Restore(tc.r, testOptions(filepath.Join(t.TempDir(), "restored")))
			runtime.ReadMemStats(&m1)
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("Restore: %v, want ErrBadBackup", err)
			}
			if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 64<<20 {
				t.Errorf("refusing it allocated %d MiB", grew>>20)
			}
		})
	}
}

// repeatReader reads as an endless run of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
