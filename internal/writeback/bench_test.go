package writeback

import (
	"context"
	"testing"
	"time"

	"wbagent/internal/protocol"
)

// BenchmarkHandle measures the agent's own cost per request: open
// (signature, JSON, HPKE), two fsynced ledger writes, signing the result
// and the audit record, with an instant directory and audit sink.
func BenchmarkHandle(b *testing.B) {
	f := newFixture(b)
	msgs := make([]protocol.Message, b.N)
	for i := range msgs {
		msgs[i] = f.request(func(s *protocol.RequestSpec) { s.ExpiresAt = f.clock.Now().Add(15 * time.Minute) })
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := f.h.Handle(context.Background(), Delivery{Message: msgs[i]}); out.Settle != Complete {
			b.Fatalf("outcome %+v", out)
		}
	}
}

// BenchmarkHandleParallel is BenchmarkHandle with concurrent deliveries,
// as maxConcurrent sessions give: ledger writes share fsyncs.
func BenchmarkHandleParallel(b *testing.B) {
	f := newFixture(b)
	msgs := make(chan protocol.Message, b.N)
	for i := 0; i < b.N; i++ {
		msgs <- f.request(func(s *protocol.RequestSpec) { s.ExpiresAt = f.clock.Now().Add(15 * time.Minute) })
	}
	close(msgs)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if out := f.h.Handle(context.Background(), Delivery{Message: <-msgs}); out.Settle != Complete {
				b.Errorf("outcome %+v", out)
				return
			}
		}
	})
}
