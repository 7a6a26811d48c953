package wire

import "wbagent/internal/secret"

// Change is the directory write one request asks for. writeback builds it
// from an opened request and the directory carries it out; one type on both
// sides means nothing copies it field by field between them.
type Change struct {
	Op         Op
	Target     Target
	Unlock     bool
	MustChange bool
	// New and Old stay owned by the request; the directory must not keep
	// them. New is set for reset and change, Old for change.
	New *secret.Secret
	Old *secret.Secret
}

// Applied is what the directory says about one write attempt: the result
// code writeback answers with, and what the audit record needs to say
// which account was written where.
type Applied struct {
	// Code is a result code of §6 and Detail its detail.
	Code   string
	Detail string
	// Transient says the attempt may succeed if tried again (no DC
	// reachable, timeout, busy).
	Transient bool
	// Indeterminate says the write was sent but its answer was lost (the
	// connection broke): it may have taken effect. Without it a failed
	// attempt wrote nothing.
	Indeterminate bool
	// DN and ObjectGUID name the account resolved, Domain the configured
	// domain it lies in and DC the server URL that answered; empty when not
	// known.
	DN         string
	ObjectGUID string
	Domain     string
	DC         string
	// ADCode is the 8-hex-digit AD error code from the diagnostic message,
	// when the directory gave one.
	ADCode string
	// Err explains a failure for logs; it never contains a secret.
	Err error
}
