package writeback

import (
	"context"
	"time"

	"wbagent/internal/ledger"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// Opener authenticates, validates and opens a request message;
// *protocol.Opener is the real one. Its errors are *protocol.Rejection.
type Opener interface {
	Open(m protocol.Message, now time.Time) (*protocol.Request, error)
}

// Change is the directory write one request asks for; the directory takes
// the same type, so no adapter copies it.
type Change = wire.Change

// Applied is what the directory says about one write attempt.
type Applied = wire.Applied

// Directory is the part of the directory writeback needs.
type Directory interface {
	// Apply resolves the target, checks scope and protection, and writes.
	Apply(ctx context.Context, c Change) Applied
	// PwdLastSet reads the account's pwdLastSet from the domain's PDC
	// emulator; it decides whether a write left "applying" took effect.
	PwdLastSet(ctx context.Context, t protocol.Target) (time.Time, error)
}

// Ledger is the agent's local exactly-one-effect store; *ledger.Store is
// the real one (see its MarkApplying for the claim rules).
type Ledger interface {
	MarkApplying(id string, at time.Time) (ledger.Record, error)
	MarkDone(id string, result []byte, at time.Time) error
	Release(id string)
	Forget(id string) error
	MarkAudited(id string) error
	Get(id string) (ledger.Record, error)
}

// Clock is the handler's time source; tests use a fake one so retry waits
// take no real time.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's error once ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
