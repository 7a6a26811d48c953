package sambadc

import (
	"context"
	"fmt"

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
