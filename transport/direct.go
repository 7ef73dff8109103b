package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SyncProtocol is the stream protocol of direct messages. A stream carries
// frames from the opener to the other side only; each frame is a uvarint
// payload length followed by the payload.
const SyncProtocol protocol.ID = "/sessionmesh/sync/1.0.0"

// Timing of direct streams.
const (
	writeTimeout = 10 * time.Second // one frame must be written within this
	frameTimeout = 30 * time.Second // one frame must be read within this, once started
	// A sender closes an outbound stream idle for outIdle; a receiver
	// drops an inbound stream idle for inIdle (> outIdle + sweep period),
	// which only happens with a stalled or foreign sender.
	outIdle   = 30 * time.Second
	outSweep  = 10 * time.Second
	inIdle    = 2 * time.Minute
	readBufSz = 32 << 10
)

var errMalformed = errors.New("transport: malformed frame")

// outStream is the reused outbound stream to one peer. mu serialises the
// Sends to that peer, so frames never interleave.
type outStream struct {
	mu       sync.Mutex
	s        network.Stream // nil: none open
	lastUsed time.Time
	dead     bool // removed from Transport.out; look it up again
}

// Send writes data to peer to as one frame of SyncProtocol over an open
// connection: it does not dial (the member loop does, at its own pace), so
// it fails at once when the peer is not connected. It returns once the
// frame has been handed to the
// connection, which does not mean the peer has processed it: direct
// messages may be lost if the connection breaks. Frames sent one after the
// other to the same peer usually arrive in order, but that is not
// guaranteed across a stream being replaced. Concurrent Sends are safe;
// Sends to the same peer are serialised.
func (t *Transport) Send(ctx context.Context, to peer.ID, data []byte) error {
	switch {
	case t.closed.Load():
		return ErrClosed
	case len(data) > t.cfg.MaxMessageBytes:
		return fmt.Errorf("transport: send %d bytes to %s (max %d): %w", len(data), to, t.cfg.MaxMessageBytes, ErrTooLarge)
	case to == t.h.ID():
		return fmt.Errorf("transport: send: %w", ErrSelf)
	case !t.gater.member(to):
		return fmt.Errorf("transport: send to %s: %w", to, ErrNotMember)
	case t.gater.isBlocked(to):
		return fmt.Errorf("transport: send to %s: %w", to, ErrBlocked)
	}
	frame := make([]byte, binary.MaxVarintLen64+len(data))
	n := binary.PutUvarint(frame, uint64(len(data)))
	n += copy(frame[n:], data)
	frame = frame[:n]

	err := t.sendFrame(ctx, to, frame)
	if err != nil {
		t.stats.directSendFailed.Add(1)
		if t.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("transport: send to %s: %w", to, err)
	}
	t.stats.directSent.Add(1)
	t.stats.directBytesOut.Add(uint64(len(data)))
	return nil
}

func (t *Transport) outFor(to peer.ID) *outStream {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	o := t.out[to]
	if o == nil {
		o = &outStream{}
		t.out[to] = o
	}
	return o
}

func (t *Transport) sendFrame(ctx context.Context, to peer.ID, frame []byte) error {
	var o *outStream
	for {
		o = t.outFor(to)
		o.mu.Lock()
		if !o.dead {
			break
		}
		o.mu.Unlock()
	}
	defer o.mu.Unlock()

	// A reused stream may have died since its last use (peer restarted,
	// connection replaced); then try once more on a fresh one. A failed
	// write never delivers a partial frame: the stream is reset and the
	// receiver drops what it got.
	for {
		fresh := o.s == nil
		if fresh {
			if err := ctx.Err(); err != nil {
				return err
			}
			sctx, cancel := context.WithTimeout(ctx, dialTimeout)
			// Never dial here: connections are the member loop's job,
			// paced by RedialInterval, so a caller retrying Sends to a
			// peer that refuses us cannot turn into a dial storm.
			sctx = network.WithNoDial(sctx, "send")
			s, err := t.h.NewStream(sctx, to, SyncProtocol)
			cancel()
			if err != nil {
				return fmt.Errorf("open stream: %w", err)
			}
			o.s = s
		}
		err := writeWithContext(ctx, o.s, frame)
		if err == nil {
			o.lastUsed = time.Now()
			return nil
		}
		if errors.Is(err, errStreamTainted) {
			// Written, but the stream's deadline may be clobbered: retire it.
			go o.s.Close()
			o.s = nil
			return nil
		}
		o.s.Reset()
		o.s = nil
		if fresh || ctx.Err() != nil {
			return err
		}
		t.log.Debug("transport: reused stream failed, retrying on a new one", "peer", to, "err", err)
	}
}

// errStreamTainted means the frame was written but the context's
// cancellation raced with it and may still change the stream's deadline.
var errStreamTainted = errors.New("transport: stream tainted")

// writeWithContext writes frame with a deadline of writeTimeout (or the
// context's deadline, if earlier) and gives up when ctx is cancelled.
func writeWithContext(ctx context.Context, s network.Stream, frame []byte) error {
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := s.Write(frame)
	stopped := stop()
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("write: %w", context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("write: %w", err)
	case !stopped:
		return errStreamTainted
	}
	return nil
}

// sweepLoop closes outbound streams that have been idle for outIdle and
// forgets peers without a stream.
func (t *Transport) sweepLoop() {
	defer t.wg.Done()
	runLoop(t.ctx, outSweep, nil, 0, t.sweepOutbound)
}

func (t *Transport) sweepOutbound() {
	now := time.Now()
	t.outMu.Lock()
	defer t.outMu.Unlock()
	for id, o := range t.out {
		if !o.mu.TryLock() {
			continue // in use
		}
		if now.Sub(o.lastUsed) >= outIdle {
			if o.s != nil {
				go o.s.Close()
				o.s = nil
			}
			o.dead = true
			delete(t.out, id)
		}
		o.mu.Unlock()
	}
}

// closeOutbound resets every outbound stream (at Close).
func (t *Transport) closeOutbound() {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	for id, o := range t.out {
		if o.mu.TryLock() {
			if o.s != nil {
				o.s.Reset()
				o.s = nil
			}
			o.dead = true
			o.mu.Unlock()
		}
		delete(t.out, id)
	}
}

// handleStream reads frames from an inbound SyncProtocol stream and hands
// them to the handler, in order, until the sender closes the stream. A
// malformed, oversized or stalled frame drops the stream.
func (t *Transport) handleStream(s network.Stream) {
	if !t.enter() {
		s.Reset()
		return
	}
	defer t.leave()
	from := s.Conn().RemotePeer()
	if !t.gater.permitted(from) {
		s.Reset()
		return
	}
	r := bufio.NewReaderSize(s, readBufSz)
	for {
		_ = s.SetReadDeadline(time.Now().Add(inIdle))
		if _, err := r.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) && !isTimeout(err) && t.ctx.Err() == nil {
				t.log.Debug("transport: direct stream ended", "peer", from, "err", err)
			}
			s.Close()
			return
		}
		_ = s.SetReadDeadline(time.Now().Add(frameTimeout))
		data, err := readFrame(r, t.cfg.MaxMessageBytes)
		if err != nil {
			if t.ctx.Err() == nil {
				t.stats.directMalformed.Add(1)
				t.log.Warn("transport: dropping direct stream", "peer", from, "err", err)
			}
			s.Reset()
			return
		}
		if t.ctx.Err() != nil {
			s.Reset()
			return
		}
		t.stats.directReceived.Add(1)
		t.stats.directBytesIn.Add(uint64(len(data)))
		t.touch(from)
		t.handler.HandleDirect(from, data)
	}
}

// frameChunk is the most readFrame allocates for a frame ahead of its
// bytes.
const frameChunk = 64 << 10

// readFrame reads one frame: a uvarint length of at most max, then that
// many bytes. The length is checked before anything is allocated, and the
// buffer grows with the bytes that arrive: a peer's 3-byte header
// declaring 1 MiB, with nothing after it, held 1 MiB for as long as the
// stream stayed open.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: length: %w", errMalformed, err)
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: length %d exceeds %d: %w", errMalformed, n, max, ErrTooLarge)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, frameChunk))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(size-len(buf), len(buf)))
		}
		k, err := io.ReadFull(r, buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, fmt.Errorf("%w: body: %w", errMalformed, err)
		}
	}
	return buf, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
