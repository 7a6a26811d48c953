// Package protocol implements protocol v1 (shared/design/protocol-v1.md):
// the signed, end-to-end encrypted requests a sender puts on Service Bus,
// and the signed results the agent sends back. Senders in other languages
// rely on this format, so the package follows the page to the letter and is
// checked against its test vectors.
//
// Agent side:
//
//	o, err := protocol.NewOpener(decryptionKeys, trustedSenders, protocol.Limits{})
//	req, err := o.Open(msg, now) // err is a *protocol.Rejection
//	defer req.Destroy()          // wipes req.New and req.Old
//
// Open checks, in the spec's order: size and content type (Malformed),
// the Ed25519 signature over the raw body (Unauthenticated), strict JSON
// with unknown and duplicate members refused (Invalid), times (Invalid, or
// Expired once expiresAt has passed), then opens the HPKE secret with the
// key secret.kid names (Invalid when it does not open). Rejection.Class
// says how to settle: SendsResult and DeadLetters.
//
// Results: NewResult fills status, reason and retryable for a code;
// SignResult builds the reply Message; VerifyResult checks one; Reason
// and ReasonFor give the end-user sentence of each code of §6.
//
// Sender side: BuildRequest seals, signs and builds the request Message,
// with SessionID from Target.SessionID for session queues; Seal alone
// makes the secret member.
//
// Keys: DecryptionKey (HPKE, suites x-wing and x25519), AgentPublicKey
// (the JSON document of §2), SigningKey (Ed25519, PKCS#8 PEM) and Ed25519
// public keys (PKIX PEM). KID computes the key id of §2. Load* read key
// files and refuse private keys other users could read; WriteAgentKeys and
// WriteSenderKeys create key sets without overwriting anything.
package protocol
