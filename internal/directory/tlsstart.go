package directory

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// oidStartTLS is the StartTLS extended operation (RFC 4511 §4.14).
const oidStartTLS = "1.3.6.1.4.1.1466.20037"

// startTLS runs the StartTLS exchange on raw itself, rather than through
// go-ldap (which flattens the handshake error into text), so a refusal, a
// TLS answer from an LDAPS port and a certificate problem each keep their
// own diagnosis.
func startTLS(ctx context.Context, raw net.Conn, cfg *tls.Config, srv *server) (*tls.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
		defer raw.SetDeadline(time.Time{})
	}
	req := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "MessageID"))
	ext := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oidStartTLS, "TLS Extended Command"))
	req.AppendChild(ext)
	if _, err := raw.Write(req.Bytes()); err != nil {
		return nil, startTLSError(orCtx(ctx, err), srv, nil)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(raw, first); err != nil {
		return nil, startTLSError(orCtx(ctx, err), srv, nil)
	}
	if first[0] != 0x30 {
		return nil, startTLSError(errors.New("the answer is not an LDAP message"), srv, first)
	}
	packet, err := ber.ReadPacket(io.MultiReader(bytes.NewReader(first), raw))
	if err != nil {
		return nil, startTLSError(orCtx(ctx, err), srv, first)
	}
	if err := ldap.GetLDAPError(packet); err != nil {
		var le *ldap.Error
		result := err.Error()
		if errors.As(err, &le) {
			result = fmt.Sprintf("%s (%d)", ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)
			if le.Err != nil && le.Err.Error() != "" {
				result += ": " + le.Err.Error()
			}
		}
		return nil, &TLSError{Cause: CauseStartTLSRefused, Err: err,
			Msg: fmt.Sprintf("%s refused StartTLS: %s", srv.url, result),
			Fix: "give the DC a certificate (Samba: tls enabled = yes in smb.conf; Windows: enroll the DC for the \"Domain Controller Authentication\" template of AD CS), or use ldaps://" + srv.host + ":636"}
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, diagnose(orCtx(ctx, err), srv)
	}
	return tc, nil
}

// startTLSError explains a StartTLS request that got no LDAP answer. The
// usual cause is ldap:// with StartTLS pointed at the LDAPS port, where the
// server expects a TLS handshake from the first byte: it answers with a TLS
// alert (a record starting 0x15) or closes the connection.
func startTLSError(err error, srv *server, first []byte) error {
	tlsAnswer := len(first) == 1 && (first[0] == 0x15 || first[0] == 0x16)
	if srv.port == "636" || srv.port == "3269" || tlsAnswer {
		seen := "closed the connection"
		if tlsAnswer {
			seen = "answered with a TLS record"
		} else if len(first) == 1 {
			seen = fmt.Sprintf("answered with byte %#02x", first[0])
		}
		return &TLSError{Cause: CauseLDAPSPort, Err: err,
			Msg: fmt.Sprintf("%s with StartTLS: port %s is the LDAPS port, which speaks TLS from the first byte, not StartTLS (the server %s)", srv.url, srv.port, seen),
			Fix: "use ldaps://" + srv.host + ":" + srv.port + ", or ldap://" + srv.host + ":389 with StartTLS"}
	}
	if len(first) == 1 {
		return &TLSError{Cause: CauseNotTLS, Err: err,
			Msg: fmt.Sprintf("%s does not speak LDAP: the StartTLS request was answered with byte %#02x", srv.url, first[0]),
			Fix: "point servers at the DC's LDAP port (ldap://host:389 with StartTLS) or its LDAPS port (ldaps://host:636)"}
	}
	return &TLSError{Cause: CauseHandshake, Err: err,
		Msg: fmt.Sprintf("%s gave no answer to StartTLS: %v", srv.url, err),
		Fix: "check the port is the DC's LDAP port (389), or use ldaps://" + srv.host + ":636"}
}
