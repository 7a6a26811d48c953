package testbed

import (
	"context"
	"testing"
	"time"

	"wbagent/internal/devbus"
)

// StartDomainTest is StartDomain for a test: a domain that fails t when it
// cannot start (with the hint that installs Samba) and stops when the test
// ends.
func StartDomainTest(ctx context.Context, t testing.TB, o DomainOptions) *Domain {
	t.Helper()
	dom, err := StartDomain(ctx, o)
	if err != nil {
		t.Fatalf("%v (run `make deps` to install Samba)", err)
	}
	t.Cleanup(func() { _ = dom.Stop() })
	return dom
}

// StartDevbus is devbus.Start for a test: a failure to start fails t, and
// the server closes when the test ends.
func StartDevbus(ctx context.Context, t testing.TB, o devbus.Options) *devbus.Server {
	t.Helper()
	srv, err := devbus.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// IntegrationContext starts an integration test: under -short it skips t
// with needs (what the test starts), else it returns a context that ends
// after timeout or with the test, whichever comes first.
func IntegrationContext(t testing.TB, needs string, timeout time.Duration) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip(needs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}
