package protocol

import "time"

// Content types and application property names of protocol v1 (§1, §6).
const (
	// RequestContentType is the ContentType of every request message.
	RequestContentType = "application/vnd.wbagent.request+json;v=1"
	// ResultContentType is the ContentType of every result message.
	ResultContentType = "application/vnd.wbagent.result+json;v=1"
	// ResultSubject is the Subject of every result message.
	ResultSubject = "result"
	// PropSender names the application property holding the signer's kid.
	PropSender = "wb-sender"
	// PropSignature names the application property holding the base64url
	// Ed25519 signature over the body.
	PropSignature = "wb-sig"
	// MaxBodySize is the largest request body the agent accepts, in bytes.
	MaxBodySize = 65536
)

// Message is the transport-neutral view of a Service Bus message: the fields
// protocol v1 reads or writes, and nothing else. The bus adapter converts it
// to and from the SDK's types, so this package stays free of AMQP.
type Message struct {
	MessageID        string
	ContentType      string
	Subject          string
	SessionID        string
	ReplyTo          string
	ReplyToSessionID string
	CorrelationID    string
	// TimeToLive is zero when the message carries none.
	TimeToLive            time.Duration
	ApplicationProperties map[string]any
	// Body is the single AMQP data section, byte for byte as sent: the
	// signature covers these exact bytes.
	Body []byte
}

// property returns a string application property, reporting whether it was
// present with a string value.
func (m *Message) property(name string) (string, bool) {
	v, ok := m.ApplicationProperties[name]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}
