//go:build !linux

package redisfront

import (
	"net"
	"time"
)

// rawIO is Linux only (rawio_linux.go); elsewhere connections use
// net.Conn's Read and Write.
type rawIO struct{}

func newRawIO(net.Conn, time.Duration) *rawIO { return nil }

func (*rawIO) read([]byte) (int, error)  { panic("unreachable") }
func (*rawIO) write([]byte) (int, error) { panic("unreachable") }
