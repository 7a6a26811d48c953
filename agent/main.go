// Samba signs the certificate it generates for a DC with a random serial
// number that is negative about half the time, and every Samba DC nobody
// re-keyed serves one; Go's x509 parser refuses negative serials unless this
// setting is on. It only lets the parser read such a serial: chain, dates,
// name and key usage are verified as before. Nothing else in the process
// gets weaker: Service Bus TLS still verifies its full chain against the
// system (or configured) roots with crypto/tls's own checks, so a negative
// serial there can only come from a CA already trusted; and the event key
// files are PKCS#8 and SubjectPublicKeyInfo, which have no serial.
//
//go:debug x509negativeserial=1

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
