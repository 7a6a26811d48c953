//go:build windows

package directory

import (
	"context"
	"fmt"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
)

// sspiBinder binds as the Windows service's own identity (LocalSystem's
// computer account or a gMSA) through SSPI Kerberos: no password in the
// config.
type sspiBinder struct{ domain *Domain }

func sspiAvailable() error { return nil }

func newSSPIBinder(d *Domain) (binder, error) { return &sspiBinder{domain: d}, nil }

func (s *sspiBinder) who() string { return "the service's Windows identity" }

func (s *sspiBinder) bind(_ context.Context, conn *ldap.Conn, srv *server) error {
	spn, err := servicePrincipal(s.domain, srv)
	if err != nil {
		return err
	}
	cl, err := gssapi.NewSSPIClient()
	if err != nil {
		return fmt.Errorf("acquire the service's SSPI credentials: %w", err)
	}
	defer cl.Close()
	if err := conn.GSSAPIBind(cl, spn, ""); err != nil {
		return fmt.Errorf("sspi bind (service principal %s): %w", spn, err)
	}
	return nil
}
