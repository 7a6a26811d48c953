//go:build !windows

package directory

import "errors"

var errNoSSPI = errors.New("bind method sspi works only on Windows: use kerberos (keytab) or simple here")

func sspiAvailable() error { return errNoSSPI }

func newSSPIBinder(*Domain) (binder, error) { return nil, errNoSSPI }
