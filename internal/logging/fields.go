package logging

// Field names used in every log line, in one place so that ops can write one
// set of queries and alerts. Use these with zap.String(logging.FieldX, ...).
const (
	FieldComponent  = "component"  // which part logged: bus, directory, writeback, devbus, ...
	FieldRequestID  = "requestId"  // protocol request id (= Service Bus MessageID)
	FieldMessageID  = "messageId"  // Service Bus message id when it is not (yet) a request id
	FieldSessionID  = "sessionId"  // Service Bus session id
	FieldQueue      = "queue"      // Service Bus queue or entity
	FieldOp         = "op"         // reset, change, unlock
	FieldTarget     = "target"     // target as the request gave it (never a password)
	FieldDN         = "dn"         // resolved distinguished name
	FieldObjectGUID = "objectGUID" // resolved objectGUID
	FieldDomain     = "domain"     // AD domain DNS name
	FieldDC         = "dc"         // the domain controller used
	FieldCode       = "code"       // protocol result code
	FieldDetail     = "detail"     // protocol result detail
	FieldADCode     = "adCode"     // 8-hex-digit AD error code from the diagnostic message
	FieldSettle     = "settle"     // complete, abandon, deadletter
	FieldReason     = "reason"     // dead-letter reason
	FieldAttempt    = "attempt"    // 1-based attempt number
	FieldDuration   = "duration"   // elapsed time
	FieldSenderKID  = "senderKid"  // sender key id
	FieldKID        = "kid"        // any key id
	FieldPath       = "path"       // a file path
	FieldAddr       = "addr"       // a network address
	FieldVersion    = "version"    // build version
	FieldCommit     = "commit"     // build commit
	FieldConfig     = "config"     // config file path or the redacted effective config
	FieldAgent      = "agent"      // agent name
)
