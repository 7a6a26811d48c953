package wire

// Op is what a request asks the agent to do.
type Op string

// The three operations of protocol v1 (§3).
const (
	// OpReset sets a new password, as an administrator would.
	OpReset Op = "reset"
	// OpChange changes the old password to a new one, as the user would.
	OpChange Op = "change"
	// OpUnlock clears a lockout and touches no password.
	OpUnlock Op = "unlock"
)

// Ops lists the operations in the order tables show them.
var Ops = []Op{OpReset, OpChange, OpUnlock}

// Valid reports whether op is one of the three operations.
func (op Op) Valid() bool { return op == OpReset || op == OpChange || op == OpUnlock }

// Result codes (§6).
const (
	CodeOK                   = "ok"
	CodePasswordPolicy       = "password_policy"
	CodeWrongOldPassword     = "wrong_old_password"
	CodeAccountLocked        = "account_locked"
	CodeAccountDisabled      = "account_disabled"
	CodeUserNotFound         = "user_not_found"
	CodeUserAmbiguous        = "user_ambiguous"
	CodeProtectedAccount     = "protected_account"
	CodeOutOfScope           = "out_of_scope"
	CodeAccessDenied         = "access_denied"
	CodeExpired              = "expired"
	CodeInvalidRequest       = "invalid_request"
	CodeDirectoryUnavailable = "directory_unavailable"
	CodeInternalError        = "internal_error"
)

// Codes lists every result code of §6 in the spec's order. Audit event ids
// number codes by their place here, so a new code goes at the end.
var Codes = []string{
	CodeOK, CodePasswordPolicy, CodeWrongOldPassword, CodeAccountLocked,
	CodeAccountDisabled, CodeUserNotFound, CodeUserAmbiguous, CodeProtectedAccount,
	CodeOutOfScope, CodeAccessDenied, CodeExpired, CodeInvalidRequest,
	CodeDirectoryUnavailable, CodeInternalError,
}

// retryable holds the codes after which a user may simply try again later.
var retryable = map[string]bool{CodeExpired: true, CodeDirectoryUnavailable: true, CodeInternalError: true}

// KnownCode reports whether code is one of the result codes of §6.
func KnownCode(code string) bool {
	for _, c := range Codes {
		if c == code {
			return true
		}
	}
	return false
}

// Retryable reports whether a user may simply try again after code.
func Retryable(code string) bool { return retryable[code] }

// Dead-letter reasons (§8) that are not also result codes; the third
// reason is CodeInvalidRequest.
const (
	// ReasonMalformed: empty, too large or of the wrong content type.
	ReasonMalformed = "malformed"
	// ReasonUnauthenticated: unknown sender or bad signature.
	ReasonUnauthenticated = "unauthenticated"
)

// DeadLetterReasons lists the dead-letter reasons of §8.
var DeadLetterReasons = []string{ReasonMalformed, ReasonUnauthenticated, CodeInvalidRequest}

// Details of CodePasswordPolicy (§6).
const (
	DetailTooShort   = "too_short"
	DetailComplexity = "complexity"
	DetailHistory    = "history"
	DetailTooYoung   = "too_young"
	DetailPolicy     = "policy"
)

// Target forms (§4): the member names of a request's target.
const (
	FormObjectGUID        = "objectGUID"
	FormImmutableID       = "immutableId"
	FormUserPrincipalName = "userPrincipalName"
	FormSAMAccountName    = "sAMAccountName"
	// FormDomain accompanies FormSAMAccountName only.
	FormDomain = "domain"
)
