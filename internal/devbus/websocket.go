package devbus

import (
	"bufio"
	"fmt"
	"net"
	"net/http"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"wbagent/internal/wsconn"
)

// Service Bus serves AMQP over WebSockets at this path, with this
// subprotocol; each binary message carries a piece of the AMQP byte
// stream.
const (
	WebSocketPath        = "/$servicebus/websocket"
	WebSocketSubprotocol = "AMQPWSB10"
)

// serveWebSocket upgrades a request to a WebSocket and runs an AMQP
// connection over it until the connection ends.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(recordWriter{w}, r, &websocket.AcceptOptions{Subprotocols: []string{WebSocketSubprotocol}})
	if err != nil {
		s.log.Debug("websocket upgrade refused", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return
	}
	if ws.Subprotocol() != WebSocketSubprotocol {
		s.log.Info("websocket without the AMQP subprotocol refused", zap.String("remote", r.RemoteAddr))
		_ = ws.Close(websocket.StatusPolicyViolation, "offer the subprotocol "+WebSocketSubprotocol+" to speak AMQP over WebSockets")
		return
	}
	// The stream is read a piece at a time, whatever a message's size:
	// the broker's frame limit applies to the frames themselves.
	nc := wsconn.New(ws, wsMessageSize)
	c := s.addConn(&remoteConn{Conn: nc, remote: r.RemoteAddr})
	if c == nil {
		return
	}
	c.serve()
}

// remoteConn reports the client's address as the HTTP server saw it.
type remoteConn struct {
	net.Conn
	remote string
}

// wsMessageSize bounds the WebSocket messages the broker sends: the byte
// stream may be cut anywhere, and small messages stay within the default
// read limit of WebSocket clients (32 KiB for coder/websocket). With its
// 4-byte header (payloads under 64 KiB) a message fills one TLS record.
const wsMessageSize = wsWriteBuffer - 4

// wsWriteBuffer is the write buffer of a WebSocket connection: one whole
// message, so that each goes out in one TLS record and one system call.
// The HTTP server's own, which the WebSocket library would write through,
// holds 4 KiB: each message longer than that took two of each.
const wsWriteBuffer = 16 << 10

// recordWriter gives the hijacked connection a write buffer of
// wsWriteBuffer bytes.
type recordWriter struct{ http.ResponseWriter }

func (w recordWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The switching-protocols response is flushed before the hijack;
	// anything still buffered goes out first.
	if err := brw.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("flush the upgrade response: %w", err)
	}
	return nc, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(nc, wsWriteBuffer)), nil
}

type tcpAddrString string

func (a tcpAddrString) Network() string { return "tcp" }
func (a tcpAddrString) String() string  { return string(a) }

func (c *remoteConn) RemoteAddr() net.Addr { return tcpAddrString(c.remote) }
