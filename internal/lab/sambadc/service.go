package sambadc

import (
	"context"
	"fmt"
	"testing"

	"wbagent/internal/secret"
)

// StaffWithService creates the OU Staff and a service account name with
// password pw, and delegates the writeback rights on Staff to it with the
// shipped script, the layout most agent tests start from. It returns the
// OU's DN.
func (dc *DC) StaffWithService(ctx context.Context, name string, pw *secret.Secret) (string, error) {
	staff, err := dc.CreateOU(ctx, "Staff", "")
	if err != nil {
		return "", err
	}
	if _, err := dc.CreateUser(ctx, UserSpec{Name: name, Password: pw}); err != nil {
		return "", err
	}
	if err := dc.Delegate(ctx, name, staff); err != nil {
		return "", fmt.Errorf("delegate %s on %s: %w", name, staff, err)
	}
	return staff, nil
}

// StartTest is Start for a test: a DC that fails t when it cannot start
// (with the hint that installs Samba) and stops when the test ends.
func StartTest(ctx context.Context, t testing.TB, o Options) *DC {
	t.Helper()
	dc, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("start a Samba AD DC (run `make deps` to install Samba): %v", err)
	}
	t.Cleanup(func() { _ = dc.Stop() })
	return dc
}
