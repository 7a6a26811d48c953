package proxy

import "testing"

// StartTest is Start for a test: the proxy keeps its files in a temporary
// folder unless o.Dir names one, stops when the test ends, and a failure
// to start fails t.
func StartTest(t testing.TB, o Options) *Proxy {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	p, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
