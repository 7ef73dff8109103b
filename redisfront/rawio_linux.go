package redisfront

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// rawIO reads and writes a connection's socket with raw system calls,
// waiting in Go's network poller when the socket is not ready, as
// net.Conn's Read and Write do. The difference: a raw call does not go
// through the scheduler's system-call bookkeeping, whose entry wakes the
// runtime's sysmon thread whenever every P was idle, which a server
// answering one request at a time is between any two requests. That
// wake-up (and sysmon's sleep after it) cost the front a fifth of its CPU
// per unpipelined request. The socket is non-blocking, so a raw call never
// sleeps in the kernel: it holds its P only for the copy.
//
// Deadlines are set only when they can matter, not per request (each set
// is a clock read and a timer change): the idle deadline is armed once and
// pushed back when it passes while the client was not silent for the
// whole idle timeout; the write deadline is armed when a write finds the
// socket buffer full, and cleared when the write ends.
type rawIO struct {
	conn net.Conn
	rc   syscall.RawConn
	// idle closes a client silent this long (0: never); waitSince is when
	// the front last began waiting for it (a read's start). Silence counts
	// from there, not from the client's last data: while the front runs
	// its commands or writes replies it waits for nothing (a client that
	// reads a long reply slowly, or whose pipeline takes long to run, is
	// not idle), as when the deadline was set before each read.
	idle      time.Duration
	waitSince time.Time
	// wTimeout bounds how long a write may wait for room in the socket
	// buffer without the client taking any of it; wArmed is set while its
	// deadline is, wMoved when bytes went out since it was armed.
	wTimeout time.Duration
	wArmed   bool
	wMoved   bool
	// The closures handed to rc, made once: a closure built per call
	// would be allocated per call.
	readFn, writeFn func(fd uintptr) bool
	// In and out of the closures, one set each way: redcon reads and
	// writes on one goroutine, but a write of the request-size error can
	// come from within a read.
	rbuf, wbuf     []byte
	rn, wn         int
	rerrno, werrno syscall.Errno
}

// newRawIO returns raw I/O for c, closing it after idle of silence (0:
// never), nil when c has no socket to reach. It owns c's deadlines.
func newRawIO(c net.Conn, idle time.Duration) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{conn: c, rc: rc, idle: idle, wTimeout: writeTimeout}
	r.readFn, r.writeFn = r.readOnce, r.writeSome
	if idle > 0 {
		r.waitSince = time.Now()
		if c.SetReadDeadline(r.waitSince.Add(idle)) != nil {
			return nil
		}
	}
	return r
}

func (r *rawIO) readOnce(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.rbuf))), uintptr(len(r.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		r.rn, r.rerrno = int(n), e
		return true
	}
}

func (r *rawIO) writeSome(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		rest := r.wbuf[r.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(rest))), uintptr(len(rest)))
		switch e {
		case 0:
			r.wn += int(n)
			r.wMoved = r.wArmed
		case syscall.EINTR:
		case syscall.EAGAIN:
			// The socket buffer is full: wait in the poller, for a
			// client that stopped reading no longer than wTimeout. A
			// client that took some since the deadline was armed is
			// reading, however slowly: the wait starts again (a large
			// reply into a slow reader must not be cut in the middle).
			if !r.wArmed || r.wMoved {
				r.wArmed, r.wMoved = true, false
				_ = r.conn.SetWriteDeadline(time.Now().Add(r.wTimeout))
			}
			return false
		default:
			r.werrno = e
			return true
		}
	}
	return true
}

// read is net.Conn's Read. Deadlines set on the connection apply: the
// poller wait ends with their timeout error.
func (r *rawIO) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	var err error
	if r.idle > 0 {
		r.waitSince = time.Now()
	}
	for {
		r.rbuf, r.rn, r.rerrno = p, 0, 0
		err = r.rc.Read(r.readFn)
		n, errno = r.rn, r.rerrno
		r.rbuf = nil
		if err == nil || r.idle <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		// The idle deadline passed: the client is silent since
		// waitSince, which may be later than when the deadline was armed.
		left := r.idle - time.Since(r.waitSince)
		if left <= 0 || r.conn.SetReadDeadline(time.Now().Add(left)) != nil {
			break
		}
	}
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// write is net.Conn's Write: all of p, or an error.
func (r *rawIO) write(p []byte) (int, error) {
	r.wbuf, r.wn, r.werrno = p, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werrno
	r.wbuf = nil
	if r.wArmed {
		// The write waited for room: its deadline must not cut the next.
		r.wArmed, r.wMoved = false, false
		_ = r.conn.SetWriteDeadline(time.Time{})
	}
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Err: errno}
	}
	return n, err
}
