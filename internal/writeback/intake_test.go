package writeback

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"wbagent/internal/ledger"
)

// probingAudit is a fakeAudit whose disk can be full, with the probe the
// real writer has.
type probingAudit struct {
	*fakeAudit
	mu   sync.Mutex
	full bool
}

func (a *probingAudit) setFull(full bool) {
	a.mu.Lock()
	a.full = full
	a.mu.Unlock()
	a.fakeAudit.mu.Lock()
	a.fakeAudit.fail = 0
	if full {
		a.fakeAudit.fail = 1 << 30
	}
	a.fakeAudit.mu.Unlock()
}

func (a *probingAudit) Ready(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.full {
		return errors.New("no space left on device")
	}
	return nil
}

// fullLedger is the real ledger on a disk that can be full.
type fullLedger struct {
	*ledger.Store
	mu   sync.Mutex
	full bool
}

func (l *fullLedger) MarkApplying(id string, at time.Time) (ledger.Record, error) {
	l.mu.Lock()
	full := l.full
	l.mu.Unlock()
	if full {
		return ledger.Record{}, errors.New("write ledger: no space left on device")
	}
	return l.Store.MarkApplying(id, at)
}

func (l *fullLedger) Probe() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full {
		return errors.New("no space left on device")
	}
	return nil
}

// A failed audit or ledger write closes intake until a probe of that disk
// succeeds; then intake opens by itself, and readiness follows.
func TestIntakeClosesWhileADiskIsFull(t *testing.T) {
	f := newFixture(t)
	aud := &probingAudit{fakeAudit: f.aud}
	led := &fullLedger{Store: f.led}
	f.h.o.Audit, f.h.o.Ledger = aud, led
	f.h.o.RetryBudget = time.Second
	ctx := context.Background()
	if err := f.h.Intake(ctx); err != nil {
		t.Fatalf("intake closed before any failure: %v", err)
	}

	aud.setFull(true)
	if out := f.handle(f.request(nil), nil); out.Settle != Abandon || !out.AuditFailed {
		t.Fatalf("with the audit disk full: %+v", out)
	}
	if err := f.h.Intake(ctx); err == nil {
		t.Fatal("intake open while the audit disk is full")
	}
	if err := f.h.Intake(ctx); err == nil {
		t.Fatal("intake open on a second ask while the audit disk is still full")
	}
	aud.setFull(false)
	if err := f.h.Intake(ctx); err != nil {
		t.Fatalf("intake still closed after space came back: %v", err)
	}
	if err := f.h.Ready(); err != nil {
		t.Fatalf("not ready after space came back: %v", err)
	}

	led.mu.Lock()
	led.full = true
	led.mu.Unlock()
	if out := f.handle(f.request(nil), nil); out.Settle != Abandon {
		t.Fatalf("with the state disk full: %+v", out)
	}
	if err := f.h.Intake(ctx); err == nil {
		t.Fatal("intake open while the state disk is full")
	}
	if err := f.h.StateReady(ctx); err == nil {
		t.Fatal("state ready while its disk is full")
	}
	led.mu.Lock()
	led.full = false
	led.mu.Unlock()
	if err := f.h.Intake(ctx); err != nil {
		t.Fatalf("intake still closed after state space came back: %v", err)
	}
	if err := f.h.StateReady(ctx); err != nil {
		t.Fatal(err)
	}
	if out := f.handle(f.request(nil), nil); out.Settle != Complete {
		t.Fatalf("after recovery: %+v", out)
	}
}
