package devbus

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// benchPipeline sends b.N messages from senders goroutines and receives
// and completes them on len(receivers) receivers, reporting messages per
// second end to end.
func benchPipeline(b *testing.B, senders int, receivers []*azservicebus.Receiver, sc *azservicebus.Client, srv *Server) {
	body := make([]byte, 512)
	var next atomic.Int64
	var done atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		s, err := sc.NewSender("bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer s.Close(context.Background())
			for next.Add(1) <= int64(b.N) {
				if err := s.SendMessage(ctx, &azservicebus.Message{Body: body}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for _, r := range receivers {
		wg.Go(func() {
			for done.Load() < int64(b.N) {
				rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				msgs, err := r.ReceiveMessages(rctx, 50, nil)
				rcancel()
				if err != nil && ctx.Err() == nil && rctx.Err() == nil {
					b.Error(err)
					return
				}
				for _, m := range msgs {
					if err := r.CompleteMessage(ctx, m, nil); err != nil {
						b.Error(err)
						return
					}
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if d := srv.Depth("bench"); d != 0 {
		b.Fatalf("%d messages left", d)
	}
}

// benchOneClient runs benchPipeline with one sender and one receiver,
// both on c: the shape of the single-connection benchmarks.
func benchOneClient(b *testing.B, srv *Server, c *azservicebus.Client) {
	r, err := c.NewReceiverForQueue("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	benchPipeline(b, 1, []*azservicebus.Receiver{r}, c, srv)
}

// BenchmarkOneConnection: one client (one AMQP connection) sends,
// receives and completes.
func BenchmarkOneConnection(b *testing.B) {
	srv := startServer(b, QueueConfig{Name: "bench"})
	c := newClient(b, srv)
	benchOneClient(b, srv, c)
}

// BenchmarkEightReceivers: four senders on one client, eight receivers
// each on its own connection.
func BenchmarkEightReceivers(b *testing.B) {
	srv := startServer(b, QueueConfig{Name: "bench"})
	sc := newClient(b, srv)
	var rs []*azservicebus.Receiver
	for range 8 {
		r, err := newClient(b, srv).NewReceiverForQueue("bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
	}
	benchPipeline(b, 4, rs, sc, srv)
}

// BenchmarkOneConnectionTLS is BenchmarkOneConnection over the TLS
// listener, the SDK's amqps:// path.
func BenchmarkOneConnectionTLS(b *testing.B) {
	srv := startSecureServer(b, "", QueueConfig{Name: "bench"})
	c := newClientOpts(b, srv.TLSConnectionString().Reveal(), &azservicebus.ClientOptions{
		TLSConfig: &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost"}})
	benchOneClient(b, srv, c)
}

// BenchmarkOneConnectionWebSockets is BenchmarkOneConnection over the
// WebSocket listener, the SDK's wss:// path through NewWebSocketConn.
func BenchmarkOneConnectionWebSockets(b *testing.B) {
	srv := startSecureServer(b, "", QueueConfig{Name: "bench"})
	c := newClientOpts(b, srv.WebSocketConnectionString().Reveal(), &azservicebus.ClientOptions{NewWebSocketConn: wsDialer(srv.CertPool())})
	benchOneClient(b, srv, c)
}
