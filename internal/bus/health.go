package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// health tracks whether the bus answers, from the outcomes of the calls the
// consumer makes anyway (accepts, receives, probes, sends, settles). A
// success older than staleAfter no longer counts: a receive that keeps
// timing out without an answer must not look healthy for ever.
type health struct {
	mu         sync.Mutex
	staleAfter time.Duration
	lastOK     time.Time
	err        error
}

func (h *health) ok(now time.Time) {
	h.mu.Lock()
	h.lastOK, h.err = now, nil
	h.mu.Unlock()
}

// fail records err unless it is a cancellation of the consumer's own doing.
func (h *health) fail(err error, _ time.Time) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// since returns how long ago the bus last answered; very long when never.
func (h *health) since(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastOK.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(h.lastOK)
}

func (h *health) ready(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.err != nil:
		return fmt.Errorf("service bus unreachable: %w", h.err)
	case h.lastOK.IsZero():
		return errors.New("service bus: not connected yet")
	case now.Sub(h.lastOK) > h.staleAfter:
		return fmt.Errorf("service bus: no answer since %s", h.lastOK.UTC().Format(time.RFC3339))
	}
	return nil
}
