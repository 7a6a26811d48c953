package devbus

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
	"go.uber.org/zap"

	"wbagent/internal/devbus/amqp"
)

func framesOf(t testing.TB, bodies ...amqp.Performative) []byte {
	var b []byte
	for _, body := range bodies {
		var err error
		if b, err = amqp.AppendFrame(b, amqp.Frame{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestBrokerSurvivesGarbage sends valid, subtly wrong and randomly
// mutated frame sequences to the broker after a proper handshake.
// Whatever arrives, the broker must not panic or deadlock: it answers,
// closes that connection, and keeps serving. (The decoders themselves are
// fuzzed in package amqp; this drives the broker's state machine.)
func TestBrokerSurvivesGarbage(t *testing.T) {
	skipShort(t)
	one := uint32(1)
	begin := &amqp.Begin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10}
	sendLink := &amqp.Attach{Name: "s", Handle: 0, Role: amqp.RoleSender, Target: &amqp.Target{Terminus: amqp.Terminus{Address: "q"}}, InitialDeliveryCount: new(uint32)}
	cbsLink := &amqp.Attach{Name: "c", Handle: 1, Role: amqp.RoleSender, Target: &amqp.Target{Terminus: amqp.Terminus{Address: "$cbs"}}, InitialDeliveryCount: new(uint32)}
	recvLink := &amqp.Attach{Name: "r", Handle: 2, Role: amqp.RoleReceiver, Source: &amqp.Source{Terminus: amqp.Terminus{Address: "$cbs"}},
		Target: &amqp.Target{Terminus: amqp.Terminus{Address: "reply"}}}
	sessLink := &amqp.Attach{Name: "ss", Handle: 3, Role: amqp.RoleReceiver, Source: &amqp.Source{Terminus: amqp.Terminus{Address: "sq"},
		Filter: map[amqp.Symbol]any{sessionFilterName: amqp.Described{Descriptor: sessionFilterCode, Value: nil}}}}
	request, _ := (&goamqp.Message{Properties: &goamqp.MessageProperties{MessageID: "1", ReplyTo: ptr("reply")},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": sasTokenType, "name": "amqp://x/q"}, Value: "SharedAccessSignature sr=x&sig=y&se=1&skn=z"}).MarshalBinary()
	seeds := [][]byte{
		framesOf(t, begin, sendLink, cbsLink, recvLink, sessLink),
		framesOf(t, begin, recvLink, cbsLink, &amqp.Flow{IncomingWindow: 1, Handle: ptr(uint32(2)), LinkCredit: &one}),
		append(framesOf(t, begin, recvLink, cbsLink), frameWithPayload(t, &amqp.Transfer{Handle: 1, DeliveryID: new(uint32), DeliveryTag: []byte{1}, MessageFormat: new(uint32)}, request)...),
		framesOf(t, begin, cbsLink, &amqp.Transfer{Handle: 1, DeliveryID: new(uint32), DeliveryTag: []byte{1}, MessageFormat: new(uint32), More: true}),
		framesOf(t, begin, recvLink, &amqp.Flow{IncomingWindow: 1, OutgoingWindow: 1, Handle: ptr(uint32(2)), LinkCredit: &one, Drain: true, Echo: true}),
		framesOf(t, begin, &amqp.Disposition{Role: amqp.RoleReceiver, First: 0, Last: ptr(uint32(0xffffffff)), Settled: true, State: &amqp.Accepted{}}),
		framesOf(t, begin, &amqp.Detach{Handle: 9, Closed: true}, &amqp.End{}),
		framesOf(t, begin, begin),
		framesOf(t, &amqp.Flow{IncomingWindow: 1}),
		framesOf(t, begin, sendLink, sendLink),
		framesOf(t, begin, sessLink, &amqp.Detach{Handle: 3, Closed: true}),
		{0, 0, 0, 9, 2, 0, 0, 0, 0x45},
	}
	srv := startServerWith(t, Options{Queues: []QueueConfig{{Name: "q"}, {Name: "sq", RequiresSession: true}},
		AcceptSessionTimeout: 20 * time.Millisecond, Logger: zap.NewNop()})
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := append([][]byte(nil), seeds...)
	for range 200 {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range 1 + rng.IntN(4) {
			switch i := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[i] ^= byte(1 << rng.IntN(8))
			case 1:
				b = b[:i]
			default:
				b[i] = byte(rng.IntN(256))
			}
			if len(b) == 0 {
				break
			}
		}
		inputs = append(inputs, b)
	}
	var wg sync.WaitGroup
	work := make(chan []byte)
	for range 4 {
		wg.Go(func() {
			for data := range work {
				r := dialRaw(t, srv)
				r.open(0)
				_ = r.nc.SetDeadline(time.Now().Add(30 * time.Millisecond))
				_, _ = r.nc.Write(data)
				for {
					if _, err := amqp.ReadFrame(r.br, 1<<20); err != nil {
						break
					}
				}
				_ = r.nc.Close()
			}
		})
	}
	for _, in := range inputs {
		work <- in
	}
	close(work)
	wg.Wait()
	alive := make(chan struct{})
	go func() { _, _ = srv.Stats("q"); close(alive) }()
	select {
	case <-alive:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker is deadlocked")
	}
	// And it still serves the SDK.
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("after")})
	wantDepth(t, srv, "q", 1)
}

func frameWithPayload(t testing.TB, tr *amqp.Transfer, payload []byte) []byte {
	b, err := amqp.AppendFrame(nil, amqp.Frame{Body: tr, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
