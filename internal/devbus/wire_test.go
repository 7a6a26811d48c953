package devbus

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus/amqp"
	"wbagent/internal/lab/testkit"
)

// rawConn is a hand-driven AMQP client for protocol edge cases the SDK
// never produces.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, srv *Server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) frame(typ uint8, body amqp.Performative) {
	r.t.Helper()
	b, err := amqp.AppendFrame(nil, amqp.Frame{Type: typ, Body: body})
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *rawConn) header(want [8]byte) {
	r.t.Helper()
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil || h != want {
		r.t.Fatalf("protocol header %q, %v; want %q", h[:], err, want[:])
	}
}

func (r *rawConn) read() amqp.Frame {
	r.t.Helper()
	for {
		fr, err := amqp.ReadFrame(r.br, 1<<20)
		if err != nil {
			r.t.Fatalf("read frame: %v", err)
		}
		if fr.Body != nil {
			return fr
		}
	}
}

// open runs SASL ANONYMOUS and the open exchange.
func (r *rawConn) open(idle time.Duration) *amqp.Open {
	r.t.Helper()
	r.write(amqp.HeaderSASL[:])
	r.header(amqp.HeaderSASL)
	if _, ok := r.read().Body.(*amqp.SASLMechanisms); !ok {
		r.t.Fatal("no sasl-mechanisms")
	}
	r.frame(amqp.FrameSASL, &amqp.SASLInit{Mechanism: "ANONYMOUS"})
	if o, ok := r.read().Body.(*amqp.SASLOutcome); !ok || o.Code != amqp.SASLOK {
		r.t.Fatal("SASL ANONYMOUS refused")
	}
	r.write(amqp.HeaderAMQP[:])
	r.header(amqp.HeaderAMQP)
	r.frame(amqp.FrameAMQP, &amqp.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 10, IdleTimeout: idle})
	o, ok := r.read().Body.(*amqp.Open)
	if !ok {
		r.t.Fatal("no open")
	}
	return o
}

func (r *rawConn) expectClose(cond amqp.Symbol) {
	r.t.Helper()
	for {
		fr := r.read()
		if c, ok := fr.Body.(*amqp.Close); ok {
			if c.Error == nil || c.Error.Condition != cond {
				r.t.Fatalf("close with %v, want %s", c.Error, cond)
			}
			if _, err := r.br.ReadByte(); err == nil {
				r.t.Fatal("connection still open after close")
			}
			return
		}
	}
}

func TestMalformedFrameClosesWithDecodeError(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	r := dialRaw(t, srv)
	r.open(0)
	// A begin whose list claims more bytes than the frame holds.
	r.write([]byte{0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xc0, 0x7f, 0x03})
	r.expectClose(amqp.ErrDecodeError)
	// The broker is unharmed: the SDK still works.
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{Body: []byte("after")})
	wantDepth(t, srv, "q", 1, "send after a bad connection failed")
	testkit.WaitFor(t, 5*time.Second, "the bad connection to go", func() bool { return len(srv.Connections()) == 1 })
}

func TestOversizedFrameClosesWithFramingError(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	r := dialRaw(t, srv)
	r.open(0)
	r.write([]byte{0, 0x10, 0, 0, 2, 0, 0, 0})
	r.expectClose(amqp.ErrFramingError)
}

func TestIdleTimeoutClosesSilentConnection(t *testing.T) {
	skipShort(t)
	srv, err := Start(context.Background(), Options{Queues: []QueueConfig{{Name: "q"}}, IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := dialRaw(t, srv)
	o := r.open(200 * time.Millisecond)
	if o.IdleTimeout != 300*time.Millisecond {
		t.Fatalf("announced idle timeout %s", o.IdleTimeout)
	}
	// The broker heartbeats at half of our idle timeout; then, hearing
	// nothing from us, it closes.
	start := time.Now()
	heartbeats := 0
	for {
		fr, err := amqp.ReadFrame(r.br, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Body == nil {
			heartbeats++
			continue
		}
		c, ok := fr.Body.(*amqp.Close)
		if !ok || c.Error == nil || c.Error.Condition != amqp.ErrResourceLimit {
			t.Fatalf("got %#v, want close with resource-limit-exceeded", fr.Body)
		}
		break
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("closed after %s", el)
	}
	if heartbeats == 0 {
		t.Fatal("no heartbeat before the idle close")
	}
}

func TestSASLOtherMechanismRefused(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	r := dialRaw(t, srv)
	r.write(amqp.HeaderSASL[:])
	r.header(amqp.HeaderSASL)
	r.read()
	r.frame(amqp.FrameSASL, &amqp.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p")})
	if o, ok := r.read().Body.(*amqp.SASLOutcome); !ok || o.Code != amqp.SASLAuth {
		t.Fatal("PLAIN was not refused")
	}
}

func TestAttachWithoutTokenIsUnauthorized(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	r := dialRaw(t, srv)
	r.open(0)
	r.frame(amqp.FrameAMQP, &amqp.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100})
	if _, ok := r.read().Body.(*amqp.Begin); !ok {
		t.Fatal("no begin")
	}
	r.frame(amqp.FrameAMQP, &amqp.Attach{Name: "l", Handle: 0, Role: amqp.RoleSender,
		Target: &amqp.Target{Terminus: amqp.Terminus{Address: "q"}}, InitialDeliveryCount: new(uint32)})
	a, ok := r.read().Body.(*amqp.Attach)
	if !ok || a.Target != nil {
		t.Fatalf("attach answer %#v, want one without target", a)
	}
	d, ok := r.read().Body.(*amqp.Detach)
	if !ok || d.Error == nil || d.Error.Condition != amqp.ErrUnauthorizedAccess {
		t.Fatalf("detach %#v, want unauthorized-access", d)
	}
}

func TestNotAMQP(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	r := dialRaw(t, srv)
	r.write([]byte("GET / HTTP/1.1\r\n\r\n"))
	r.header(amqp.HeaderAMQP)
	if _, err := r.br.ReadByte(); err == nil {
		t.Fatal("connection still open")
	}
}
