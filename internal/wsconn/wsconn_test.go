package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"wbagent/internal/lab/testkit"
	"wbagent/internal/wsconn"
)

// pair returns a client Conn (messages of at most maxMessage bytes) and
// the raw server end, which the test drives message by message.
func pair(t *testing.T, maxMessage int) (*wsconn.Conn, *websocket.Conn) {
	t.Helper()
	srvCh := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		srvCh <- ws
		// The connection lives on after the handler returns.
	}))
	t.Cleanup(hs.Close)
	ctx := ctxT(t)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	var srv *websocket.Conn
	select {
	case srv = <-srvCh:
	case <-ctx.Done():
		t.Fatal("no server end")
	}
	c := wsconn.New(ws, maxMessage)
	t.Cleanup(func() { ws.CloseNow(); srv.CloseNow() })
	return c, srv
}

// ctxT bounds one call on the server end; the test fails rather than hang.
func ctxT(t *testing.T) context.Context { return testkit.Context(t, 30*time.Second) }

func TestWriteCutsMessagesAtTheMaximum(t *testing.T) {
	c, srv := pair(t, 7)
	data := []byte("0123456789abcdefghij") // 20 bytes: 7 + 7 + 6
	go func() {
		if n, err := c.Write(data); err != nil || n != len(data) {
			t.Errorf("write: %d, %v", n, err)
		}
	}()
	var got []byte
	var sizes []int
	for len(got) < len(data) {
		typ, b, err := srv.Read(ctxT(t))
		if err != nil {
			t.Fatalf("server read: %v", err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("message type %v, want binary", typ)
		}
		sizes = append(sizes, len(b))
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("server got %q, want %q", got, data)
	}
	if len(sizes) != 3 || sizes[0] != 7 || sizes[1] != 7 || sizes[2] != 6 {
		t.Fatalf("message sizes %v, want [7 7 6]", sizes)
	}
}

func TestWriteWithoutMaximumSendsOneMessage(t *testing.T) {
	c, srv := pair(t, 0)
	data := bytes.Repeat([]byte{0xa5}, 100<<10)
	go func() {
		if _, err := c.Write(data); err != nil {
			t.Errorf("write: %v", err)
		}
	}()
	srv.SetReadLimit(-1)
	_, b, err := srv.Read(ctxT(t))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("server read %d bytes, %v; want one message of %d", len(b), err, len(data))
	}
}

func TestReadJoinsMessagesAndEndsAtNormalClose(t *testing.T) {
	c, srv := pair(t, 0)
	go func() {
		for _, m := range []string{"ab", "", "cde", strings.Repeat("x", 5000)} {
			if err := srv.Write(ctxT(t), websocket.MessageBinary, []byte(m)); err != nil {
				t.Errorf("server write: %v", err)
				return
			}
		}
		_ = srv.Close(websocket.StatusNormalClosure, "")
	}()
	got, err := io.ReadAll(io.LimitReader(readerFunc(c.Read), 1<<20))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if want := "abcde" + strings.Repeat("x", 5000); string(got) != want {
		t.Fatalf("read %d bytes %.10q…, want %d", len(got), got, len(want))
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after close: %d, %v; want io.EOF", n, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestReadRefusesTextMessages(t *testing.T) {
	c, srv := pair(t, 0)
	closed := make(chan error, 1)
	go func() {
		_ = srv.Write(ctxT(t), websocket.MessageText, []byte("hello"))
		_, _, err := srv.Read(ctxT(t))
		closed <- err
	}()
	_, err := c.Read(make([]byte, 16))
	if err == nil || !strings.Contains(err.Error(), "binary") {
		t.Fatalf("read of a text message: %v; want an error naming binary messages", err)
	}
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("the peer saw %v; want a close with status unsupported data", err)
	}
}

func TestCloseEndsABlockedRead(t *testing.T) {
	c, _ := pair(t, 0)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		done <- err
	}()
	// Let the Read block first; Close must end it either way.
	time.Sleep(50 * time.Millisecond)
	_ = c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a read on a closed connection succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("close did not end a blocked read")
	}
}

func TestReadDeadlineEndsABlockedRead(t *testing.T) {
	c, _ := pair(t, 0)
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked read ended with %v; want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the read deadline did not end a blocked read")
	}
}

func TestPassedDeadlinesFailCallsUntilMoved(t *testing.T) {
	c, srv := pair(t, 0)
	past := time.Now().Add(-time.Second)
	_ = c.SetDeadline(past)
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v; want os.ErrDeadlineExceeded", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v; want os.ErrDeadlineExceeded", err)
	}
	// No call was under way, so the connection is still open: moving the
	// deadlines makes it usable again.
	_ = c.SetDeadline(time.Time{})
	go func() {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Errorf("write after the deadline was cleared: %v", err)
		}
	}()
	_, b, err := srv.Read(ctxT(t))
	if err != nil || string(b) != "ping" {
		t.Fatalf("server read %q, %v; want ping", b, err)
	}
	go func() { _ = srv.Write(ctxT(t), websocket.MessageBinary, []byte("pong")) }()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read after the deadline was cleared: %q, %v", buf, err)
	}
	// A future deadline that is moved away never fires.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_ = c.SetReadDeadline(time.Time{})
	time.Sleep(100 * time.Millisecond)
	go func() { _ = srv.Write(ctxT(t), websocket.MessageBinary, []byte("late")) }()
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "late" {
		t.Fatalf("read after a cleared deadline's time: %q, %v", buf, err)
	}
}
