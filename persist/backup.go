package persist

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A backup file is a consistent snapshot of a store, taken at one Badger
// read timestamp while the store keeps serving (Store.Backup), and restored
// into an empty directory by Restore. Layout:
//
//	line 1   backupMagic
//	line 2   the header, one JSON object (backupHeader)
//	frames   uint32 little-endian length, then the frame body
//
// A frame body is a kind byte and data: frameData carries the next chunk
// of Badger's backup stream (DB.Backup), frameEnd, the last frame, the
// SHA-256 of all data chunks. Nothing may follow it. When the store is
// encrypted at rest, so is its backup: each body is sealed with AES-GCM
// under a key derived from the store's key, the nonce is the header's
// nonce prefix and the frame number, and the header line is authenticated
// with every frame, so frames cannot be dropped, reordered or moved to
// another backup, and a truncated file is detected.
const (
	backupMagic    = "sessionmesh-backup 1"
	backupChunk    = 256 << 10
	backupMaxFrame = backupChunk + 1 + 64 // kind byte and the GCM tag, with room
	frameData      = 'D'
	frameEnd       = 'E'
)

// ErrBadBackup reports a backup file that is not one, is damaged or
// truncated, or was written by an incompatible version.
var ErrBadBackup = errors.New("persist: not a valid backup")

// ErrNotEmpty reports a restore into a directory that already holds files.
var ErrNotEmpty = errors.New("persist: directory is not empty")

// backupHeader describes a backup file.
type backupHeader struct {
	// Format is the store's record layout (formatMarker): a build restores
	// only its own.
	Format string `json:"format"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// Encrypted tells whether the frames are sealed; NoncePrefix is then
	// the random first 4 bytes of every nonce (hex), also the salt of the
	// key derivation.
	Encrypted   bool   `json:"encrypted"`
	NoncePrefix string `json:"nonce_prefix,omitempty"`
}

// BackupInfo describes a backup taken or restored.
type BackupInfo struct {
	// Bytes is the size of the backup file.
	Bytes int64
	// Created is when the snapshot was taken.
	Created time.Time
	// Encrypted tells whether the file is encrypted with the store's key.
	Encrypted bool
	// Sessions and Root describe the restored store (Restore only): the
	// number of sessions and the digest root rebuilt from them.
	Sessions int
	Root     uint64
}

// Backup writes a consistent snapshot of the store to w, as of the moment
// it starts: writes committed meanwhile are not in it. The store keeps
// serving during the backup. An encrypted store writes an encrypted backup
// (Restore needs the same key). A store in memory cannot be backed up
// (errors.ErrUnsupported, before anything is written).
func (s *Store) Backup(w io.Writer) (BackupInfo, error) {
	if !s.enter() {
		return BackupInfo{}, ErrClosed
	}
	defer s.leave()
	b, ok := s.be.(*badgerBackend)
	if !ok {
		return BackupInfo{}, fmt.Errorf("persist: backup: a store in memory has no backup: %w", errors.ErrUnsupported)
	}
	cw := &countingWriter{w: w}
	fw, err := newFrameWriter(cw, s.opts.EncryptionKey, time.Now())
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persist: backup: %w", err)
	}
	// DB.Backup streams every key at one read timestamp; chunking buffers
	// its small writes into frames.
	bw := bufio.NewWriterSize(fw, backupChunk)
	if _, err := b.db.Backup(bw, 0); err != nil {
		return BackupInfo{}, fmt.Errorf("persist: backup: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return BackupInfo{}, fmt.Errorf("persist: backup: %w", err)
	}
	if err := fw.close(); err != nil {
		return BackupInfo{}, fmt.Errorf("persist: backup: %w", err)
	}
	return BackupInfo{Bytes: cw.n, Created: fw.hdr.Created, Encrypted: fw.hdr.Encrypted}, nil
}

// Restore reads a backup from r into a new store in o.Dir, which must not
// exist or be empty (ErrNotEmpty otherwise), then opens the store, which
// rebuilds its digests, and closes it. The backup of an encrypted store
// needs its key in o.EncryptionKey; the new store is encrypted with
// o.EncryptionKey when set. A damaged, truncated or foreign file fails
// with ErrBadBackup and leaves o.Dir as it was.
func Restore(r io.Reader, o Options) (BackupInfo, error) {
	if o.InMemory {
		return BackupInfo{}, errors.New("persist: restore: needs a directory, not a store in memory")
	}
	if err := o.Validate(); err != nil {
		return BackupInfo{}, err
	}
	created, err := prepareEmptyDir(o.Dir)
	if err != nil {
		return BackupInfo{}, err
	}
	info, err := restore(r, o)
	if err != nil {
		// Leave the directory as it was: empty, or absent.
		if entries, rerr := os.ReadDir(o.Dir); rerr == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(o.Dir, e.Name()))
			}
		}
		if created {
			_ = os.Remove(o.Dir)
		}
		return BackupInfo{}, err
	}
	return info, nil
}

// prepareEmptyDir makes dir if absent, refuses it if it holds anything, and
// reports whether it made it.
func prepareEmptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("persist: restore: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("persist: restore: %w", err)
	case len(entries) > 0:
		return false, fmt.Errorf("persist: restore into %s: %w (%d entries): restore only into an empty directory", dir, ErrNotEmpty, len(entries))
	}
	return false, nil
}

func restore(r io.Reader, o Options) (BackupInfo, error) {
	cr := &countingReader{r: r}
	fr, err := newFrameReader(cr, o.EncryptionKey)
	if err != nil {
		return BackupInfo{}, err
	}
	if fr.hdr.Format != string(formatMarker) && !upgradable(fr.hdr.Format) {
		// Open upgrades a version 2 or 3 store once restored.
		return BackupInfo{}, fmt.Errorf("%w: store format %q, this build restores %q, %q and %q", ErrBadBackup, fr.hdr.Format, formatV2, formatV3, formatMarker)
	}
	b, err := openBadger(o)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persist: restore: %w", err)
	}
	// Load reads until the frame reader's io.EOF, which it returns only
	// after the end frame has matched; any damage surfaces as an error.
	lr := &loadReader{fr: fr}
	lerr := b.db.Load(lr, 64)
	if cerr := b.close(); lerr == nil && cerr != nil {
		lerr = fmt.Errorf("persist: restore: %w", cerr)
	}
	if fr.err != nil {
		return BackupInfo{}, fr.err // the reason Load saw a bad stream
	}
	if lr.err != nil {
		return BackupInfo{}, lr.err
	}
	if lerr != nil {
		return BackupInfo{}, fmt.Errorf("%w: loading: %w", ErrBadBackup, lerr)
	}
	if !fr.done {
		return BackupInfo{}, fmt.Errorf("%w: the stream ended before its end frame", ErrBadBackup)
	}
	s, err := Open(o)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persist: restore: opening the restored store: %w", err)
	}
	info := BackupInfo{
		Bytes:     cr.n,
		Created:   fr.hdr.Created,
		Encrypted: fr.hdr.Encrypted,
		Sessions:  s.Len(),
		Root:      s.Digests().Root,
	}
	if err := s.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("persist: restore: %w", err)
	}
	return info, nil
}

// backupAEAD derives the backup key from the store's key: the same key
// never serves both Badger's and the backup's cipher.
func backupAEAD(storeKey, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, storeKey, salt, "sessionmesh backup v1", 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// frameWriter cuts what it is given into frames, one per Write.
type frameWriter struct {
	w      io.Writer
	hdr    backupHeader
	hline  []byte // the header line, authenticated with every frame
	aead   cipher.AEAD
	prefix []byte
	seq    uint64
	sum    hash.Hash
	buf    []byte
}

func newFrameWriter(w io.Writer, key []byte, now time.Time) (*frameWriter, error) {
	fw := &frameWriter{w: w, hdr: backupHeader{Format: string(formatMarker), Created: now.UTC()}, sum: sha256.New()}
	if key != nil {
		fw.prefix = make([]byte, 4)
		if _, err := rand.Read(fw.prefix); err != nil {
			return nil, err
		}
		aead, err := backupAEAD(key, fw.prefix)
		if err != nil {
			return nil, err
		}
		fw.aead = aead
		fw.hdr.Encrypted = true
		fw.hdr.NoncePrefix = hex.EncodeToString(fw.prefix)
	}
	h, err := json.Marshal(fw.hdr)
	if err != nil {
		return nil, err
	}
	fw.hline = append(h, '\n')
	if _, err := io.WriteString(w, backupMagic+"\n"); err != nil {
		return nil, err
	}
	if _, err := w.Write(fw.hline); err != nil {
		return nil, err
	}
	return fw, nil
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += backupChunk {
		chunk := p[off:min(len(p), off+backupChunk)]
		fw.sum.Write(chunk)
		if err := fw.frame(frameData, chunk); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (fw *frameWriter) close() error { return fw.frame(frameEnd, fw.sum.Sum(nil)) }

func (fw *frameWriter) frame(kind byte, data []byte) error {
	body := append(append(fw.buf[:0], kind), data...)
	if fw.aead != nil {
		body = fw.aead.Seal(body[:0:0], frameNonce(fw.prefix, fw.seq), body, fw.hline)
	}
	fw.seq++
	fw.buf = body[:0]
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(body)))
	if _, err := fw.w.Write(n[:]); err != nil {
		return err
	}
	_, err := fw.w.Write(body)
	return err
}

func frameNonce(prefix []byte, seq uint64) []byte {
	n := make([]byte, 12)
	copy(n, prefix)
	binary.BigEndian.PutUint64(n[4:], seq)
	return n
}

// frameReader checks a backup's frames and reads out the data they carry.
type frameReader struct {
	r      *bufio.Reader
	hdr    backupHeader
	hline  []byte
	aead   cipher.AEAD
	prefix []byte
	seq    uint64
	sum    hash.Hash
	cur    []byte // data not yet read
	buf    []byte
	done   bool
	err    error // sticky: the first damage found
}

func newFrameReader(r io.Reader, key []byte) (*frameReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// ReadSlice reads no further than the buffer: a file that is not a
	// backup, with no newline for gigabytes, was read whole (ReadString)
	// before it was refused.
	magic, err := br.ReadSlice('\n')
	if err != nil || string(magic) != backupMagic+"\n" {
		return nil, fmt.Errorf("%w: no backup header (want %q first)", ErrBadBackup, backupMagic)
	}
	hline, err := br.ReadSlice('\n')
	if err != nil || len(hline) > 4096 {
		return nil, fmt.Errorf("%w: header line unreadable", ErrBadBackup)
	}
	hline = bytes.Clone(hline) // the buffer's next read overwrites it
	fr := &frameReader{r: br, hline: hline, sum: sha256.New()}
	dec := json.NewDecoder(bytes.NewReader(hline))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr.hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	if fr.hdr.Encrypted {
		if key == nil {
			return nil, fmt.Errorf("%w: the backup is encrypted: give the store's encryption key", ErrBadKey)
		}
		if fr.prefix, err = hex.DecodeString(fr.hdr.NoncePrefix); err != nil || len(fr.prefix) != 4 {
			return nil, fmt.Errorf("%w: header: bad nonce prefix", ErrBadBackup)
		}
		if fr.aead, err = backupAEAD(key, fr.prefix); err != nil {
			return nil, fmt.Errorf("persist: restore: %w", err)
		}
	}
	return fr, nil
}

func (fr *frameReader) fail(format string, args ...any) error {
	if fr.err == nil {
		fr.err = fmt.Errorf("%w: "+format, append([]any{ErrBadBackup}, args...)...)
	}
	return fr.err
}

func (fr *frameReader) Read(p []byte) (int, error) {
	for len(fr.cur) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		if fr.done {
			return 0, io.EOF
		}
		if err := fr.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, fr.cur)
	fr.cur = fr.cur[n:]
	return n, nil
}

// next reads one frame.
func (fr *frameReader) next() error {
	var n [4]byte
	if _, err := io.ReadFull(fr.r, n[:]); err != nil {
		return fr.fail("truncated after %d frames", fr.seq)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size == 0 || size > backupMaxFrame {
		return fr.fail("frame %d: bad length %d", fr.seq, size)
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	body := fr.buf[:size]
	if _, err := io.ReadFull(fr.r, body); err != nil {
		return fr.fail("truncated in frame %d", fr.seq)
	}
	if fr.aead != nil {
		var err error
		if body, err = fr.aead.Open(body[:0], frameNonce(fr.prefix, fr.seq), body, fr.hline); err != nil {
			if fr.seq == 0 {
				return fr.fail("frame 0 does not decrypt: wrong encryption key, or damaged")
			}
			return fr.fail("frame %d does not decrypt: damaged", fr.seq)
		}
	}
	fr.seq++
	if len(body) == 0 {
		return fr.fail("frame %d: empty", fr.seq-1)
	}
	switch body[0] {
	case frameData:
		fr.sum.Write(body[1:])
		fr.cur = body[1:]
	case frameEnd:
		if !bytes.Equal(body[1:], fr.sum.Sum(nil)) {
			return fr.fail("checksum mismatch: the data is damaged")
		}
		if _, err := fr.r.ReadByte(); err != io.EOF {
			return fr.fail("data after the end frame")
		}
		fr.done = true
	default:
		return fr.fail("frame %d: unknown kind %q", fr.seq-1, body[0])
	}
	return nil
}

// maxLoadRecord bounds one record of Badger's backup stream. Badger cuts
// its stream into lists of about 16 MB (100 MB at most, a soft limit).
const maxLoadRecord = 1 << 30

// loadReader hands Badger's Load its stream a whole record at a time.
// Load reads each record's 8-byte length and allocates that much before
// reading the record: a damaged length alone (an unencrypted backup's
// checksum is only checked at its end) made a 120-byte file allocate
// 1 GiB, or crash the process with a length over what a slice can hold.
// Here a record is read, its buffer growing with the bytes that arrive,
// before Load sees its length.
type loadReader struct {
	fr  *frameReader
	rec bytes.Buffer // the current record, length first
	err error        // the damage found, sticky
}

func (l *loadReader) Read(p []byte) (int, error) {
	if l.rec.Len() == 0 {
		if l.err != nil {
			return 0, l.err
		}
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	return l.rec.Read(p)
}

// fill reads the next record; io.EOF where the stream ends between two.
func (l *loadReader) fill() error {
	var n [8]byte
	if _, err := io.ReadFull(l.fr, n[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return l.fail("truncated in a record's length")
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > maxLoadRecord {
		return l.fail("a record of %d bytes (at most %d)", size, maxLoadRecord)
	}
	l.rec.Reset()
	l.rec.Write(n[:])
	if k, err := io.CopyN(&l.rec, l.fr, int64(size)); err != nil {
		return l.fail("a record of %d bytes ends after %d", size, k)
	}
	return nil
}

// fail records the damage: the frame reader's when it found some (the
// underlying reason), else the stream's.
func (l *loadReader) fail(format string, args ...any) error {
	if l.fr.err != nil {
		l.err = l.fr.err
	} else {
		l.err = fmt.Errorf("%w: "+format, append([]any{ErrBadBackup}, args...)...)
	}
	return l.err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
