package devbus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/secret"
)

// DefaultKeyName is the shared access key name in the connection string,
// the one a Service Bus namespace creates by default.
const DefaultKeyName = "RootManageSharedAccessKey"

// Defaults for queue settings left zero in a QueueConfig.
const (
	DefaultLockDuration     = 30 * time.Second
	DefaultMaxDeliveryCount = 10
)

// Options configure a Server. Only Queues is usually set; everything else
// has a default suited to tests on loopback.
type Options struct {
	// Addr is the TCP address to listen on. Empty means 127.0.0.1:0, a free
	// port on loopback; ConnectionString reports the port chosen.
	Addr string
	// Key is the shared access key clients must sign their SAS tokens
	// with. Nil means a random key, available through ConnectionString.
	Key *secret.Secret
	// KeyName is the shared access key name; DefaultKeyName when empty.
	KeyName string
	// Queues are created at start. More can be added with AddQueue.
	Queues []QueueConfig
	// Logger receives connection and error events; nil discards them.
	Logger *zap.Logger
	// Clock drives lock, session-lock, TTL and duplicate-detection timers;
	// nil means the real clock. Socket idle timeouts always use real time.
	Clock Clock
	// IdleTimeout is announced in the open frame: a connection silent for
	// longer is closed with amqp:resource-limit-exceeded. Default 2 minutes;
	// negative disables it.
	IdleTimeout time.Duration
	// MaxFrameSize is announced in the open frame. Default 65536.
	MaxFrameSize uint32
	// MaxMessageSize is the largest message a sender may send, announced on
	// every link. Default 1 MiB.
	MaxMessageSize uint64
	// AcceptSessionTimeout is how long a next-available session receiver
	// waits for a session when the client does not say
	// (com.microsoft:timeout link property). Default 60 seconds.
	AcceptSessionTimeout time.Duration
	// StateFile, when set, is loaded at start (if it exists) and written
	// when the server closes, so queues survive a restart.
	StateFile string
	// TLSAddr, when set, is a second listener serving AMQP over TLS, as a
	// namespace does on port 5671; port 0 picks a free port.
	TLSAddr string
	// WSAddr, when set, is a listener serving AMQP over WebSockets over
	// TLS at WebSocketPath, as a namespace does on port 443.
	WSAddr string
	// TLSDir is where the TLS listeners' CA (CAFile, which clients trust)
	// and server certificate are kept, and reused when present. Empty
	// keeps them in memory: CACertPEM returns the CA.
	TLSDir string
	// Entra, when set, serves an Entra ID stand-in on the TLS listeners
	// (AuthorityHost) whose access tokens CBS put-token accepts as type
	// jwt, with the rights of the client they were issued to.
	Entra *EntraOptions
}

// QueueConfig defines a queue, like the queue properties of a Service Bus
// namespace.
type QueueConfig struct {
	// Name is the queue name. Names compare case-insensitively, as in
	// Service Bus, and may not contain '/' or '$'.
	Name string
	// RequiresSession makes the queue a session queue: every message needs
	// a session id, and receivers lock one session at a time.
	RequiresSession bool
	// LockDuration is how long a peek-lock (or a session lock) lasts before
	// it must be renewed. Default 30 seconds.
	LockDuration time.Duration
	// MaxDeliveryCount is how many times a message may be delivered; after
	// the last delivery fails it goes to the dead-letter queue with reason
	// MaxDeliveryCountExceeded. Default 10.
	MaxDeliveryCount int
	// DefaultTTL is the time to live of messages that set none (a shorter
	// per-message TTL wins). Zero means messages never expire.
	DefaultTTL time.Duration
	// DeadLetterOnExpiration moves expired messages to the dead-letter
	// queue (reason TTLExpiredException) instead of dropping them.
	DeadLetterOnExpiration bool
	// DuplicateDetection is the duplicate-detection window: a message whose
	// MessageID was accepted within the window is acknowledged and dropped.
	// Zero turns duplicate detection off.
	DuplicateDetection time.Duration
}

func (q *QueueConfig) normalize() error {
	if q.Name == "" {
		return errors.New("queue name is empty: give every queue a name")
	}
	if strings.ContainsAny(q.Name, "/$ \t\r\n") {
		return fmt.Errorf("queue name %q may not contain '/', '$' or spaces", q.Name)
	}
	if q.LockDuration < 0 || q.MaxDeliveryCount < 0 || q.DefaultTTL < 0 || q.DuplicateDetection < 0 {
		return fmt.Errorf("queue %q: durations and counts must not be negative", q.Name)
	}
	if q.LockDuration == 0 {
		q.LockDuration = DefaultLockDuration
	}
	if q.MaxDeliveryCount == 0 {
		q.MaxDeliveryCount = DefaultMaxDeliveryCount
	}
	return nil
}

// Clock is the time source of the broker's timers, injectable so that
// lock and TTL behaviour can be driven without sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stopped.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether
	// it did.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
