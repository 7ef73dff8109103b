package redisfront

import (
	"io"
	"net"
	"syscall"
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
type rawIO struct {
	rc syscall.RawConn
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

// newRawIO returns raw I/O for c, nil when c has no socket to reach.
func newRawIO(c net.Conn) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeSome
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
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the socket buffer is full: wait in the poller
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
	r.rbuf, r.rn, r.rerrno = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerrno
	r.rbuf = nil
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
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Err: errno}
	}
	return n, err
}
