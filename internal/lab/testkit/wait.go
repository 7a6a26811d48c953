package testkit

import (
	"context"
	"testing"
	"time"
)

// pollEvery is short next to every wait a test sets (seconds), and long
// enough that polling costs nothing beside the work being waited for.
const pollEvery = 10 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test, naming what it
// waited for, once d has passed.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// Context returns a context that ends after d or when the test ends,
// whichever comes first, so no call a test makes can outlive it.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// StopAtCleanup has stop (a Close or Stop that takes a context) called when
// the test ends, given at most within: a component that hangs on its way
// down fails to stop instead of hanging the test binary.
func StopAtCleanup(t testing.TB, within time.Duration, stop func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		_ = stop(ctx)
	})
}
