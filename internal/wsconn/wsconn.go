// Package wsconn carries a byte stream over a WebSocket connection as a
// net.Conn, in binary messages, the way AMQP over WebSockets (Service
// Bus's AMQPWSB10) does.
//
// It replaces github.com/coder/websocket's NetConn, whose reads and
// writes each run under a cancellable context: the library registers and
// removes a context.AfterFunc for every frame read and every message
// written, which on the AMQP path (several small frames per request) is
// most of the WebSocket framing's cost. Here reads and writes run under
// a context that is never done, and deadlines are timers that close the
// connection when they expire during a call, as NetConn does: a timed
// out read or write ends the connection, which is what both AMQP peers
// do after one anyway.
package wsconn

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Conn is a net.Conn over a WebSocket connection: each Write sends binary
// messages of at most the maximum size New was given, Read returns the
// bytes of the binary messages received in order, across message
// boundaries.
type Conn struct {
	ws         *websocket.Conn
	maxMessage int

	rmu    sync.Mutex
	reader io.Reader // the message being read; nil between messages
	eof    bool

	wmu sync.Mutex

	rd, wd deadline
}

// New returns ws as a net.Conn. maxMessage bounds the messages Write
// sends (a longer Write becomes several messages); zero or less sends
// each Write as one message. The read limit of ws is lifted: the stream
// is read a piece at a time, never a whole message at once, so a limit
// on message size guards nothing.
func New(ws *websocket.Conn, maxMessage int) *Conn {
	ws.SetReadLimit(-1)
	c := &Conn{ws: ws, maxMessage: maxMessage}
	c.rd.expire = func() { ws.CloseNow() }
	c.wd.expire = c.rd.expire
	return c
}

// Read reads the stream: the rest of the current message, or the next
// one. A close with status normal or going away is io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.rd.begin(); err != nil {
		return 0, err
	}
	defer c.rd.end()
	for {
		if c.eof {
			return 0, io.EOF
		}
		if c.reader == nil {
			typ, r, err := c.ws.Reader(context.Background())
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway:
					c.eof = true
					return 0, io.EOF
				}
				return 0, c.rd.failed("read", err)
			}
			if typ != websocket.MessageBinary {
				_ = c.ws.Close(websocket.StatusUnsupportedData, "expected binary messages")
				return 0, fmt.Errorf("read websocket: a %v message where the stream has only binary ones", typ)
			}
			c.reader = r
		}
		n, err := c.reader.Read(p)
		if err == io.EOF {
			c.reader, err = nil, nil
		}
		if err != nil {
			return n, c.rd.failed("read", err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Write sends p in binary messages of at most the maximum size.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.wd.begin(); err != nil {
		return 0, err
	}
	defer c.wd.end()
	n := 0
	for len(p) > 0 {
		k := len(p)
		if c.maxMessage > 0 {
			k = min(k, c.maxMessage)
		}
		if err := c.ws.Write(context.Background(), websocket.MessageBinary, p[:k]); err != nil {
			return n, c.wd.failed("write", err)
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close closes the WebSocket with status normal closure, waiting a short
// while for the peer's close as the protocol asks. A Read or Write under
// way is ended at once by closing the connection beneath instead, as
// NetConn does: the closing handshake would wait for that Read.
func (c *Conn) Close() error {
	c.rd.stop()
	c.wd.stop()
	if c.rd.busy.Load() || c.wd.busy.Load() {
		return c.ws.CloseNow()
	}
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// Addr is the address of either end: the WebSocket does not know the
// underlying connection's.
type Addr struct{}

// Network is "websocket".
func (Addr) Network() string { return "websocket" }

func (Addr) String() string { return "websocket/unknown-addr" }

// LocalAddr is an Addr.
func (c *Conn) LocalAddr() net.Addr { return Addr{} }

// RemoteAddr is an Addr; wrap the Conn to report the peer's address where
// it is known (the HTTP request's).
func (c *Conn) RemoteAddr() net.Addr { return Addr{} }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline bounds the reads to come and the one under way: one
// that expires during a Read closes the connection.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline bounds the writes to come and the one under way: one
// that expires during a Write closes the connection.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

// deadline is one direction's deadline. Once it has passed, calls fail
// with os.ErrDeadlineExceeded until it is moved; if it passes while a
// call is under way, expire closes the connection to end that call.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	at     time.Time
	expire func()

	expired atomic.Bool
	busy    atomic.Bool
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = t
	d.expired.Store(false)
	if t.IsZero() {
		if d.timer != nil {
			d.timer.Stop()
		}
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.fireLocked()
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A timer that was moved may still run for its old time.
	if d.at.IsZero() || time.Now().Before(d.at) {
		return
	}
	d.fireLocked()
}

// fireLocked marks the deadline passed, then ends a call under way. A
// call marks itself busy before it looks at expired, so one of the two
// sees the other.
func (d *deadline) fireLocked() {
	d.expired.Store(true)
	if d.busy.Load() {
		d.expire()
	}
}

// begin starts a call, or fails it if the deadline has passed.
func (d *deadline) begin() error {
	d.busy.Store(true)
	if d.expired.Load() {
		d.busy.Store(false)
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (d *deadline) end() { d.busy.Store(false) }

// failed is a call's error: the deadline's if it ended the call.
func (d *deadline) failed(op string, err error) error {
	if d.expired.Load() {
		return fmt.Errorf("%s websocket: %w", op, os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("%s websocket: %w", op, err)
}
