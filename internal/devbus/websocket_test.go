package devbus

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"wbagent/internal/lab/testkit"
	"wbagent/internal/wsconn"
)

// countingListener counts the writes to the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: nc, writes: l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestWebSocketMessageIsOneWrite: each message the broker sends, header
// and payload, reaches the connection in one write (one TLS record on the
// WebSocket listener), and a longer write is cut at wsMessageSize.
func TestWebSocketMessageIsOneWrite(t *testing.T) {
	var writes atomic.Int64
	var upgraded sync.WaitGroup
	upgraded.Add(1)
	var atUpgrade int64
	send := make(chan []byte)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(recordWriter{w}, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			upgraded.Done()
			return
		}
		atUpgrade = writes.Load()
		upgraded.Done()
		nc := wsconn.New(ws, wsMessageSize)
		for b := range send {
			if _, err := nc.Write(b); err != nil {
				t.Errorf("write: %v", err)
			}
		}
	}))
	hs.Listener = countingListener{Listener: hs.Listener, writes: &writes}
	hs.Start()
	t.Cleanup(hs.Close)
	ws, _, err := websocket.Dial(testkit.Context(t, 30*time.Second), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	upgraded.Wait()

	data := bytes.Repeat([]byte("0123456789abcdef"), 2*wsMessageSize/16+100)
	send <- data
	var got []byte
	for len(got) < len(data) {
		_, b, err := ws.Read(testkit.Context(t, 30*time.Second))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(b) > wsMessageSize {
			t.Fatalf("a message of %d bytes, over the %d the broker sends", len(b), wsMessageSize)
		}
		got = append(got, b...)
	}
	close(send)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	// data is two full messages and a short one.
	if n := writes.Load() - atUpgrade; n != 3 {
		t.Fatalf("%d writes to the connection for 3 messages, want one each", n)
	}
}
