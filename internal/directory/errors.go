package directory

import (
	"errors"
	"regexp"
	"strings"

	"wbagent/internal/wire"

	"github.com/go-ldap/ldap/v3"
)

// Rule maps a directory error to a result. Rules are tried in order; the
// first whose non-zero fields all match wins. The AD code (the 8 hex digits
// leading the diagnostic message) is matched before the text, because the
// text differs between Samba and Windows (Windows says only "problem 1005"
// for every 52D, hence the detail "policy" fallback).
type Rule struct {
	Result    uint16 // LDAP result code; 0 matches any
	ADCode    string // e.g. "0000052D"; "" matches any
	Text      string // lower-case substring of the message; "" matches any
	Code      string
	Detail    string
	Transient bool
	// Why says what the rule stands for (shown in the table test).
	Why string
}

// Rules is the one place where directory errors are classified as result
// codes and as permanent or transient.
var Rules = []Rule{
	// Password operations (facts page: Errors).
	{ADCode: "00000056", Code: wire.CodeWrongOldPassword, Why: "change with a wrong old password"},
	{ADCode: "00000775", Code: wire.CodeAccountLocked, Why: "account locked out"},
	{ADCode: "0000052D", Text: "too young", Code: wire.CodePasswordPolicy, Detail: wire.DetailTooYoung, Why: "minimum password age"},
	{ADCode: "0000052D", Text: "history", Code: wire.CodePasswordPolicy, Detail: wire.DetailHistory, Why: "password in history"},
	{ADCode: "0000052D", Text: "too short", Code: wire.CodePasswordPolicy, Detail: wire.DetailTooShort, Why: "shorter than the minimum length"},
	{ADCode: "0000052D", Text: "complexity", Code: wire.CodePasswordPolicy, Detail: wire.DetailComplexity, Why: "complexity rules"},
	{ADCode: "0000052D", Code: wire.CodePasswordPolicy, Detail: wire.DetailPolicy, Why: "policy violation the DC does not name (Windows: problem 1005)"},
	// Rights of the agent's own account.
	{ADCode: "00002098", Code: wire.CodeAccessDenied, Why: "no write property access (lockoutTime, pwdLastSet)"},
	{ADCode: "00000005", Code: wire.CodeAccessDenied, Why: "Windows access denied (no Reset Password right)"},
	{Result: ldap.LDAPResultInsufficientAccessRights, Code: wire.CodeAccessDenied, Why: "insufficient access rights"},
	{Result: ldap.LDAPResultInvalidCredentials, Code: wire.CodeAccessDenied, Why: "the agent's own bind was refused"},
	// Mistakes of configuration or of this code: permanent, not the user's.
	{ADCode: "00002035", Code: wire.CodeInternalError, Why: "write sent to a global catalog port"},
	{ADCode: "00000057", Code: wire.CodeInternalError, Why: "bad pwdLastSet or lockoutTime value"},
	{Result: ldap.LDAPResultConfidentialityRequired, Code: wire.CodeInternalError, Why: "the DC requires an encrypted connection"},
	{Result: ldap.LDAPResultUnwillingToPerform, Text: "encrypt", Code: wire.CodeInternalError, Why: "the DC requires an encrypted connection"},
	{Result: ldap.LDAPResultStrongAuthRequired, Code: wire.CodeInternalError, Why: "the DC requires a stronger bind"},
	{Result: ldap.LDAPResultUnavailableCriticalExtension, Code: wire.CodePasswordPolicy, Detail: wire.DetailPolicy, Why: "the DC refused the critical policy hints control"},
	{Text: "unexpected response: 24", Code: wire.CodePasswordPolicy, Detail: wire.DetailPolicy, Why: "Samba answers a critical unknown control with an ExtendedResponse"},
	// The account went away between lookup and write.
	{Result: ldap.LDAPResultNoSuchObject, Code: wire.CodeUserNotFound, Why: "object deleted or moved"},
	// Constraint violations without a known code are still policy.
	{Result: ldap.LDAPResultConstraintViolation, Code: wire.CodePasswordPolicy, Detail: wire.DetailPolicy, Why: "constraint violation without an AD code"},
	// The directory is there but cannot serve now: try again.
	{Result: ldap.LDAPResultBusy, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "busy"},
	{Result: ldap.LDAPResultUnavailable, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "unavailable"},
	{Result: ldap.LDAPResultTimeLimitExceeded, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "server time limit"},
	{Result: ldap.LDAPResultAdminLimitExceeded, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "server admin limit"},
	{Result: ldap.LDAPResultServerDown, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "server down"},
	{Result: ldap.LDAPResultTimeout, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "client timeout"},
	{Result: ldap.LDAPResultConnectError, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "cannot connect"},
	{Result: ldap.ErrorNetwork, Code: wire.CodeDirectoryUnavailable, Transient: true, Why: "connection lost or timed out"},
}

var adCodeRE = regexp.MustCompile(`^\s*([0-9A-Fa-f]{8}):`)

// ADCode returns the 8-hex-digit code that leads an AD diagnostic message,
// upper case, or "".
func ADCode(msg string) string {
	if m := adCodeRE.FindStringSubmatch(msg); m != nil {
		return strings.ToUpper(m[1])
	}
	return ""
}

// Classify maps err (from an LDAP operation) to an outcome: code, detail,
// transient and the AD code. Connection failures and timeouts are
// directory_unavailable and transient; anything unknown is internal_error.
func Classify(err error) Outcome {
	if err == nil {
		return Outcome{Code: wire.CodeOK}
	}
	var result uint16
	msg := err.Error()
	var le *ldap.Error
	if errors.As(err, &le) {
		result = le.ResultCode
		if le.Err != nil {
			msg = le.Err.Error()
		}
	}
	ad := ADCode(msg)
	lower := strings.ToLower(msg)
	// A lost connection, a refused TLS handshake or a timeout is not an
	// answer from the directory.
	if le == nil && isNetwork(err) {
		return Outcome{Code: wire.CodeDirectoryUnavailable, Transient: true, Err: err}
	}
	for _, r := range Rules {
		if r.Result != 0 && r.Result != result {
			continue
		}
		if r.ADCode != "" && r.ADCode != ad {
			continue
		}
		if r.Text != "" && !strings.Contains(lower, r.Text) {
			continue
		}
		return Outcome{Code: r.Code, Detail: r.Detail, Transient: r.Transient, ADCode: ad, Err: err}
	}
	return Outcome{Code: wire.CodeInternalError, ADCode: ad, Err: err}
}
