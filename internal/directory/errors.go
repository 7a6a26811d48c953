package directory

import (
	"errors"
	"regexp"
	"strings"

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
	{ADCode: "00000056", Code: CodeWrongOldPassword, Why: "change with a wrong old password"},
	{ADCode: "00000775", Code: CodeAccountLocked, Why: "account locked out"},
	{ADCode: "0000052D", Text: "too young", Code: CodePasswordPolicy, Detail: DetailTooYoung, Why: "minimum password age"},
	{ADCode: "0000052D", Text: "history", Code: CodePasswordPolicy, Detail: DetailHistory, Why: "password in history"},
	{ADCode: "0000052D", Text: "too short", Code: CodePasswordPolicy, Detail: DetailTooShort, Why: "shorter than the minimum length"},
	{ADCode: "0000052D", Text: "complexity", Code: CodePasswordPolicy, Detail: DetailComplexity, Why: "complexity rules"},
	{ADCode: "0000052D", Code: CodePasswordPolicy, Detail: DetailPolicy, Why: "policy violation the DC does not name (Windows: problem 1005)"},
	// Rights of the agent's own account.
	{ADCode: "00002098", Code: CodeAccessDenied, Why: "no write property access (lockoutTime, pwdLastSet)"},
	{ADCode: "00000005", Code: CodeAccessDenied, Why: "Windows access denied (no Reset Password right)"},
	{Result: ldap.LDAPResultInsufficientAccessRights, Code: CodeAccessDenied, Why: "insufficient access rights"},
	{Result: ldap.LDAPResultInvalidCredentials, Code: CodeAccessDenied, Why: "the agent's own bind was refused"},
	// Mistakes of configuration or of this code: permanent, not the user's.
	{ADCode: "00002035", Code: CodeInternalError, Why: "write sent to a global catalog port"},
	{ADCode: "00000057", Code: CodeInternalError, Why: "bad pwdLastSet or lockoutTime value"},
	{Result: ldap.LDAPResultConfidentialityRequired, Code: CodeInternalError, Why: "the DC requires an encrypted connection"},
	{Result: ldap.LDAPResultUnwillingToPerform, Text: "encrypt", Code: CodeInternalError, Why: "the DC requires an encrypted connection"},
	{Result: ldap.LDAPResultStrongAuthRequired, Code: CodeInternalError, Why: "the DC requires a stronger bind"},
	{Result: ldap.LDAPResultUnavailableCriticalExtension, Code: CodePasswordPolicy, Detail: DetailPolicy, Why: "the DC refused the critical policy hints control"},
	{Text: "unexpected response: 24", Code: CodePasswordPolicy, Detail: DetailPolicy, Why: "Samba answers a critical unknown control with an ExtendedResponse"},
	// The account went away between lookup and write.
	{Result: ldap.LDAPResultNoSuchObject, Code: CodeUserNotFound, Why: "object deleted or moved"},
	// Constraint violations without a known code are still policy.
	{Result: ldap.LDAPResultConstraintViolation, Code: CodePasswordPolicy, Detail: DetailPolicy, Why: "constraint violation without an AD code"},
	// The directory is there but cannot serve now: try again.
	{Result: ldap.LDAPResultBusy, Code: CodeDirectoryUnavailable, Transient: true, Why: "busy"},
	{Result: ldap.LDAPResultUnavailable, Code: CodeDirectoryUnavailable, Transient: true, Why: "unavailable"},
	{Result: ldap.LDAPResultTimeLimitExceeded, Code: CodeDirectoryUnavailable, Transient: true, Why: "server time limit"},
	{Result: ldap.LDAPResultAdminLimitExceeded, Code: CodeDirectoryUnavailable, Transient: true, Why: "server admin limit"},
	{Result: ldap.LDAPResultServerDown, Code: CodeDirectoryUnavailable, Transient: true, Why: "server down"},
	{Result: ldap.LDAPResultTimeout, Code: CodeDirectoryUnavailable, Transient: true, Why: "client timeout"},
	{Result: ldap.LDAPResultConnectError, Code: CodeDirectoryUnavailable, Transient: true, Why: "cannot connect"},
	{Result: ldap.ErrorNetwork, Code: CodeDirectoryUnavailable, Transient: true, Why: "connection lost or timed out"},
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
		return Outcome{Code: CodeOK}
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
		return Outcome{Code: CodeDirectoryUnavailable, Transient: true, Err: err}
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
	return Outcome{Code: CodeInternalError, ADCode: ad, Err: err}
}
