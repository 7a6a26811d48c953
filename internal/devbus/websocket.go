package devbus

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"
	"go.uber.org/zap"
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
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{WebSocketSubprotocol}})
	if err != nil {
		s.log.Debug("websocket upgrade refused", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return
	}
	if ws.Subprotocol() != WebSocketSubprotocol {
		s.log.Info("websocket without the AMQP subprotocol refused", zap.String("remote", r.RemoteAddr))
		_ = ws.Close(websocket.StatusPolicyViolation, "offer the subprotocol "+WebSocketSubprotocol+" to speak AMQP over WebSockets")
		return
	}
	// A message carries at most what one Write of the client holds: a few
	// frames. The broker's frame limit applies to the frames themselves.
	ws.SetReadLimit(max(int64(s.maxFrameSize)*4, 1<<20))
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	c := s.addConn(&remoteConn{Conn: nc, remote: r.RemoteAddr})
	if c == nil {
		return
	}
	c.serve()
}

// remoteConn reports the client's address as the HTTP server saw it and
// writes in messages of at most wsMessageSize bytes.
type remoteConn struct {
	net.Conn
	remote string
}

// wsMessageSize bounds the WebSocket messages the broker sends: the byte
// stream may be cut anywhere, and small messages stay within the default
// read limit of WebSocket clients (32 KiB for coder/websocket).
const wsMessageSize = 16 << 10

func (c *remoteConn) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), wsMessageSize)
		w, err := c.Conn.Write(b[:k])
		n += w
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

type tcpAddrString string

func (a tcpAddrString) Network() string { return "tcp" }
func (a tcpAddrString) String() string  { return string(a) }

func (c *remoteConn) RemoteAddr() net.Addr { return tcpAddrString(c.remote) }
