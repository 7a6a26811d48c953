package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
)

// Broker conditions an admin meets most (AMQP 1.0 §2.8.15 and Service
// Bus's own), with what each means in a sentence.
var conditionMeanings = map[string]string{
	string(amqp.ErrCondNotFound):              "the entity does not exist",
	string(amqp.ErrCondUnauthorizedAccess):    "the key or identity is not allowed to do this",
	string(amqp.ErrCondResourceLimitExceeded): "a namespace quota is used up",
	string(amqp.ErrCondNotAllowed):            "the broker does not allow this operation here",
	string(amqp.ErrCondInternalError):         "the broker failed internally",
	string(amqp.ErrCondConnectionForced):      "the broker closed the connection",
	string(amqp.ErrCondDetachForced):          "the broker closed the link",
	"com.microsoft:server-busy":               "the namespace is busy",
	"com.microsoft:timeout":                   "the broker timed out",
	"com.microsoft:message-lock-lost":         "the message lock was lost",
	"com.microsoft:session-lock-lost":         "the session lock was lost",
	"com.microsoft:session-cannot-be-locked":  "another receiver holds the session",
	"com.microsoft:entity-disabled":           "the entity is disabled",
}

// sdkAMQPError finds the broker's condition and description in the text
// of an SDK error. The SDK's *azservicebus.Error keeps the AMQP error it
// wraps but does not unwrap to it, so its text, which renders that error
// as a Go struct, is the only way to them.
var sdkAMQPError = regexp.MustCompile(`\*Error\{Condition: ([^,]+), Description: (.*), Info: map\[.*\]\}`)

// rpcStatus finds the status and description of a failed $cbs or
// $management request in the SDK's text for it.
var rpcStatus = regexp.MustCompile(`status code (\d+) and description: (.*)$`)

// Condition returns the broker's AMQP error condition in err
// ("amqp:not-found", "amqp:unauthorized-access", …), or "" when err
// carries none (a network failure, a timeout of our own).
func Condition(err error) string {
	c, _ := condition(err)
	return c
}

func condition(err error) (cond, desc string) {
	if err == nil {
		return "", ""
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return string(ae.Condition), ae.Description
	}
	if m := sdkAMQPError.FindStringSubmatch(err.Error()); m != nil {
		return m[1], m[2]
	}
	return "", ""
}

// Describe renders a Service Bus error as a sentence an admin can act
// on: the broker's condition (amqp:not-found, amqp:unauthorized-access, …)
// with its meaning and the broker's own description, instead of the SDK's
// Go struct dump. Errors that are not the broker's keep their text.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	if cond, desc := condition(err); cond != "" {
		desc = cleanDescription(desc)
		s := "the broker answered " + cond
		if m := conditionMeanings[cond]; m != "" {
			s += " (" + m + ")"
		}
		if desc != "" {
			s += ": " + desc
		}
		return s
	}
	if m := rpcStatus.FindStringSubmatch(err.Error()); m != nil {
		s := "the broker answered status " + m[1]
		if IsUnauthorized(err) {
			s += " (the key or identity is not allowed to do this)"
		}
		if d := cleanDescription(m[2]); d != "" {
			s += ": " + d
		}
		return s
	}
	var se *azservicebus.Error
	switch {
	case errors.As(err, &se) && se.Code == azservicebus.CodeConnectionLost:
		return "the connection to the broker was lost and could not be restored: " + innerText(se)
	case errors.Is(err, context.DeadlineExceeded):
		return "the broker did not answer in time"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "cannot reach the broker: " + oe.Error()
	}
	return err.Error()
}

// innerText is an SDK error's text without its "(code): " prefix.
func innerText(se *azservicebus.Error) string {
	s := se.Error()
	if i := strings.Index(s, "): "); i >= 0 && strings.HasPrefix(s, "(") {
		return s[i+3:]
	}
	return s
}

// cleanDescription trims Service Bus's tracking suffix (TrackingId,
// SystemTracker, Timestamp), which matters to Azure support, not to the
// admin reading a check row.
func cleanDescription(d string) string {
	d = strings.TrimSpace(d)
	if i := strings.Index(d, " TrackingId:"); i > 0 {
		d = strings.TrimSpace(d[:i])
	}
	return strings.TrimSuffix(d, ",")
}

// IsNotFound reports whether err is the broker saying an entity (queue)
// does not exist.
func IsNotFound(err error) bool {
	var se *azservicebus.Error
	if errors.As(err, &se) && se.Code == azservicebus.CodeNotFound {
		return true
	}
	return Condition(err) == string(amqp.ErrCondNotFound)
}

// IsUnauthorized reports whether err is the broker refusing the key or
// identity.
func IsUnauthorized(err error) bool {
	var se *azservicebus.Error
	if errors.As(err, &se) && se.Code == azservicebus.CodeUnauthorizedAccess {
		return true
	}
	return Condition(err) == string(amqp.ErrCondUnauthorizedAccess)
}

// NamespaceName is the namespace c connects to, for messages: the host of
// the connection string's Endpoint, or Namespace.
func (c Connection) NamespaceName() string {
	if c.Namespace != "" {
		return c.Namespace
	}
	if c.ConnectionString.IsEmpty() {
		return ""
	}
	for _, part := range strings.Split(c.ConnectionString.Reveal(), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Endpoint") {
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(v)); err == nil && u.Host != "" {
			return u.Host
		}
	}
	return ""
}

// MissingQueue is the diagnosis of a request or reply queue the broker
// says does not exist: what is wrong and what to do, in one sentence.
// orElse is the other fix, when the name is the mistake ("correct
// servicebus.queue").
func MissingQueue(queue, namespace, orElse string) string {
	where := ""
	if namespace != "" {
		where = fmt.Sprintf(" in namespace %s", namespace)
	}
	return fmt.Sprintf("queue %s does not exist%s: create it, or %s", queue, where, orElse)
}
