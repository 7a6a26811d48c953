// Package protocol implements protocol v1 (shared/design/protocol-v1.md):
// the signed, end-to-end encrypted requests a sender puts on Service Bus,
// and the signed results the agent sends back. Senders in other languages
// rely on this format, so the package follows the page to the letter and is
// checked against its independent test vectors (shared/testvectors).
// It depends only on internal/secret: Message is a transport-neutral view
// of a Service Bus message that the bus adapter converts.
//
// Agent side:
//
//	o, err := protocol.NewOpener(decryptionKeys, trustedSenders, protocol.Limits{MaxClockSkew: skew, MaxLifetime: life})
//	req, err := o.Open(msg, now) // err is a *protocol.Rejection
//	defer req.Destroy()          // wipes req.New and req.Old
//
// Open checks, in the spec's order: size and content type (Malformed), the
// Ed25519 signature over the raw body (Unauthenticated), strict JSON with
// unknown and duplicate members, wrong types, invalid UTF-8 and lone
// surrogates refused (Invalid), times (Invalid, or Expired once expiresAt
// has passed), then opens the HPKE secret with the key secret.kid names
// (Invalid when it does not open or a password breaks the rules: 1 to 256
// code points, no NUL). Rejection.Class says how to settle (SendsResult,
// DeadLetters); Rejection.Rule names the rule in words safe for logs and
// dead-letter descriptions; Rejection.Request carries the fields parsed so
// far (always ID and ReplyTo after authentication), never a password.
//
// Results: NewResult fills status, end-user reason and retryable for a
// code; SignResult builds the reply Message; VerifyResult checks one, and
// ParseResult reads one without a key. Reason and ReasonFor give the
// sentence for every code of §6.
//
// Sender side: BuildRequest seals, signs and builds the request Message
// (SessionID from Target.SessionID when the queue has sessions, TimeToLive
// from the lifetime); Seal makes the secret member alone; SigningKey.Sign
// signs any body.
//
// Keys: DecryptionKey (HPKE suites x-wing, the default, and x25519),
// AgentPublicKey (the JSON document of §2), SigningKey (Ed25519, PKCS#8
// PEM) and Ed25519 public keys (PKIX PEM). KID computes the key id of §2.
// An agent decryption key file is a PEM block "WBAGENT HPKE PRIVATE KEY"
// holding RFC 9180 SerializePrivateKey output (the 32-byte X-Wing seed, or
// the X25519 scalar: the vectors' privateKey form) with Suite and Kid
// headers. LoadDecryptionKey, LoadSigningKey, LoadPublicKey and
// LoadAgentPublicKey read key files, refusing private keys group or others
// can access; WriteAgentKeys and WriteSenderKeys create key sets and never
// overwrite a file.
package protocol
