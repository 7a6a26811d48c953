package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"

	"wbagent/internal/bus"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

func init() {
	register(&command{
		name:    "send",
		summary: "send one signed, encrypted request to the agent's queue and print its result (a test and demo sender)",
		run:     runSend,
	})
}

const sendUsage = `send --connection-string CS|--connection-string-env NAME --queue Q --reply-queue R
       --sender-key FILE --agent-key agent-hpke.pub.json [--agent-signing-key agent-sign.pub]
       --op reset|change|unlock --target objectGUID=...|immutableId=...|userPrincipalName=...|sAMAccountName=NAME[@DOMAIN]
       [--unlock] [--must-change] [--password-stdin] [--old-password-stdin]
       [--actor ID --actor-kind self|admin|system] [--session] [--ttl 5m] [--wait 60s]

Passwords are read from stdin, one per line, never from flags: with both
--old-password-stdin and --password-stdin the first line is the old password,
the second the new one. Without --session, results for other requests met
on the reply queue are abandoned for their owners; use --session when several
senders share a reply queue. Exit status: 0 succeeded, 3 failed, 1 error or
no result in time.`

// sendOptions are the parsed flags of `wbagent send`.
type sendOptions struct {
	connString, connEnv    string
	queue, replyQueue      string
	senderKey, agentKey    string
	agentSigningKey        string
	op, target             string
	unlock, mustChange     bool
	passwordStdin, oldStdn bool
	actor, actorKind       string
	session                bool
	ttl, wait              time.Duration
}

func runSend(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "send", sendUsage)
	var o sendOptions
	fs.StringVar(&o.connString, "connection-string", "", "Service Bus connection string (prefer --connection-string-env: flags show in the process list)")
	fs.StringVar(&o.connEnv, "connection-string-env", "", "name of the environment variable holding the connection string")
	fs.StringVar(&o.queue, "queue", "", "request queue the agent reads")
	fs.StringVar(&o.replyQueue, "reply-queue", "", "queue the agent sends the result to")
	fs.StringVar(&o.senderKey, "sender-key", "", "sender's Ed25519 private key (PEM, mode 0600), from wbagent keygen --sender or openssl genpkey -algorithm ed25519")
	fs.StringVar(&o.agentKey, "agent-key", "", "agent's HPKE public key document (agent-hpke.pub.json)")
	fs.StringVar(&o.agentSigningKey, "agent-signing-key", "", "agent's result signing public key (agent-sign.pub); without it the result's signature is not checked")
	fs.StringVar(&o.op, "op", "", "reset, change or unlock")
	fs.StringVar(&o.target, "target", "", "objectGUID=GUID, immutableId=BASE64, userPrincipalName=UPN or sAMAccountName=NAME[@DOMAIN]")
	fs.BoolVar(&o.unlock, "unlock", false, "also clear a lockout (implied by --op unlock)")
	fs.BoolVar(&o.mustChange, "must-change", false, "after a reset, the user must change the password at next logon")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the new password from stdin")
	fs.BoolVar(&o.oldStdn, "old-password-stdin", false, "read the old password from stdin (change); it comes first")
	fs.StringVar(&o.actor, "actor", "wbagent-send", "who asks, recorded in the agent's audit log")
	fs.StringVar(&o.actorKind, "actor-kind", protocol.ActorAdmin, "self, admin or system")
	fs.BoolVar(&o.session, "session", false, "the queues require sessions: set SessionID on the request and wait on a reply session")
	fs.DurationVar(&o.ttl, "ttl", 5*time.Minute, "request lifetime (expiresAt - issuedAt); the agent allows 15m by default")
	fs.DurationVar(&o.wait, "wait", 60*time.Second, "how long to wait for the result")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	spec, err := o.requestSpec()
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("send: %w", err))
	}
	conn, err := o.connectionString(env)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("send: %w", err))
	}
	defer conn.Destroy()
	signer, err := protocol.LoadSigningKey(o.senderKey)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer signer.Destroy()
	agent, err := protocol.LoadAgentPublicKey(o.agentKey)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var resultKey ed25519.PublicKey
	if o.agentSigningKey != "" {
		if resultKey, err = protocol.LoadPublicKey(o.agentSigningKey); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if spec.Old, spec.New, err = o.readPasswords(env.stdin); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	now := time.Now()
	spec.IssuedAt, spec.ExpiresAt = now, now.Add(o.ttl)
	msg, err := protocol.BuildRequest(signer, agent, spec)
	spec.New.Destroy()
	spec.Old.Destroy()
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	result, err := exchange(ctx, env, conn, o, msg, resultKey)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if result.Status != protocol.StatusSucceeded {
		return withCode(exitNegative, nil)
	}
	return nil
}

// requestSpec checks the flags and turns them into a request, passwords
// aside.
func (o *sendOptions) requestSpec() (protocol.RequestSpec, error) {
	var spec protocol.RequestSpec
	for name, v := range map[string]string{"--queue": o.queue, "--reply-queue": o.replyQueue, "--sender-key": o.senderKey, "--agent-key": o.agentKey, "--op": o.op, "--target": o.target} {
		if v == "" {
			return spec, fmt.Errorf("%s is required (see wbagent send -h)", name)
		}
	}
	if o.ttl <= 0 || o.wait <= 0 {
		return spec, errors.New("--ttl and --wait must be positive")
	}
	op := wire.Op(o.op)
	switch op {
	case wire.OpReset:
		if !o.passwordStdin || o.oldStdn {
			return spec, errors.New("--op reset takes the new password with --password-stdin, and no old password")
		}
	case wire.OpChange:
		if !o.passwordStdin || !o.oldStdn {
			return spec, errors.New("--op change needs --old-password-stdin and --password-stdin (old password on the first line, new on the second)")
		}
	case wire.OpUnlock:
		if o.passwordStdin || o.oldStdn || o.mustChange {
			return spec, errors.New("--op unlock takes no password and no --must-change")
		}
	default:
		return spec, fmt.Errorf("--op %q: use reset, change or unlock", o.op)
	}
	target, err := parseTargetFlag(o.target)
	if err != nil {
		return spec, err
	}
	spec = protocol.RequestSpec{
		ID: uuid.NewString(), Op: op, Target: target, Unlock: o.unlock, MustChange: o.mustChange,
		Actor:   protocol.Actor{ID: o.actor, Kind: o.actorKind},
		ReplyTo: o.replyQueue, Session: o.session,
	}
	if o.session {
		// A reply session of our own: the receiver below accepts exactly
		// it, so results for other senders on the same queue stay untouched.
		spec.ReplyToSessionID = uuid.NewString()
	}
	return spec, nil
}

// parseTargetFlag reads --target: FORM=VALUE, with sAMAccountName=NAME@DOMAIN
// naming the domain after the last '@'.
func parseTargetFlag(s string) (protocol.Target, error) {
	form, value, ok := strings.Cut(s, "=")
	if !ok || value == "" {
		return protocol.Target{}, fmt.Errorf("--target %q: write FORM=VALUE, e.g. userPrincipalName=alice@corp.example", s)
	}
	var t protocol.Target
	switch form {
	case wire.FormObjectGUID:
		t.ObjectGUID = value
	case wire.FormImmutableID:
		t.ImmutableID = value
	case wire.FormUserPrincipalName:
		t.UserPrincipalName = value
	case wire.FormSAMAccountName:
		t.SAMAccountName = value
		if i := strings.LastIndexByte(value, '@'); i >= 0 {
			t.SAMAccountName, t.Domain = value[:i], value[i+1:]
			if t.SAMAccountName == "" || t.Domain == "" {
				return protocol.Target{}, fmt.Errorf("--target %q: write sAMAccountName=NAME or sAMAccountName=NAME@DOMAIN", s)
			}
		}
	default:
		return protocol.Target{}, fmt.Errorf("--target %q: form must be objectGUID, immutableId, userPrincipalName or sAMAccountName", s)
	}
	if err := protocol.ValidateTarget(t); err != nil {
		return protocol.Target{}, fmt.Errorf("--target: %w", err)
	}
	return t, nil
}

// connectionString takes the connection string from the flag or the
// environment variable, exactly one of them.
func (o *sendOptions) connectionString(env *cmdEnv) (*secret.Secret, error) {
	switch {
	case o.connString != "" && o.connEnv != "":
		return nil, errors.New("give --connection-string or --connection-string-env, not both")
	case o.connString != "":
		return secret.FromString(o.connString), nil
	case o.connEnv != "":
		v := env.getenv(o.connEnv)
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is empty or unset; export the Service Bus connection string in it", o.connEnv)
		}
		return secret.FromString(v), nil
	}
	return nil, errors.New("--connection-string or --connection-string-env is required")
}

// maxPasswordLine bounds one stdin line: 256 code points of up to 4 bytes,
// and a line ending.
const maxPasswordLine = 256*4 + 2

// readPasswords reads the old (when asked) then the new password, one line
// each, from stdin.
func (o *sendOptions) readPasswords(stdin io.Reader) (oldPw, newPw *secret.Secret, err error) {
	if o.oldStdn {
		if oldPw, err = readSecretLine(stdin, "old password"); err != nil {
			return nil, nil, err
		}
	}
	if o.passwordStdin {
		if newPw, err = readSecretLine(stdin, "new password"); err != nil {
			oldPw.Destroy()
			return nil, nil, err
		}
	}
	return oldPw, newPw, nil
}

// readSecretLine reads one line byte by byte, so nothing beyond it is
// consumed and no buffer other than its own, wiped, holds the password.
func readSecretLine(r io.Reader, what string) (*secret.Secret, error) {
	if r == nil {
		return nil, fmt.Errorf("read %s: no stdin", what)
	}
	buf := make([]byte, 0, maxPasswordLine)
	defer func() { clear(buf[:cap(buf)]) }()
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			if len(buf) == cap(buf) {
				return nil, fmt.Errorf("read %s from stdin: line longer than %d bytes", what, maxPasswordLine)
			}
			buf = append(buf, one[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from stdin: %w", what, err)
		}
	}
	one[0] = 0
	line := buf
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) == 0 {
		return nil, fmt.Errorf("read %s from stdin: empty line or end of input; pipe the password, one per line", what)
	}
	return secret.New(line), nil
}

// exchange sends the request and waits for its result, verified with
// resultKey when given.
func exchange(ctx context.Context, env *cmdEnv, conn *secret.Secret, o sendOptions, msg protocol.Message, resultKey ed25519.PublicKey) (*protocol.Result, error) {
	client, err := azservicebus.NewClientFromConnectionString(conn.Reveal(), nil)
	if err != nil {
		return nil, fmt.Errorf("connect to Service Bus: check the connection string: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = client.Close(closeCtx)
	}()
	waitCtx, cancel := context.WithTimeout(ctx, o.wait)
	defer cancel()
	// Open the reply receiver before sending, so a fast agent's result
	// cannot race the receiver's creation.
	var recv resultReceiver
	if o.session {
		sr, err := client.AcceptSessionForQueue(waitCtx, o.replyQueue, msg.ReplyToSessionID, nil)
		if err != nil {
			return nil, fmt.Errorf("open reply session on queue %s: %w", o.replyQueue, err)
		}
		recv = sr
	} else {
		r, err := client.NewReceiverForQueue(o.replyQueue, nil)
		if err != nil {
			return nil, fmt.Errorf("open receiver on queue %s: %w", o.replyQueue, err)
		}
		recv = r
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = recv.Close(closeCtx)
	}()
	sender, err := client.NewSender(o.queue, nil)
	if err != nil {
		return nil, fmt.Errorf("open sender on queue %s: %w", o.queue, err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sender.Close(closeCtx)
	}()
	if err := sender.SendMessage(waitCtx, bus.ToServiceBus(&msg), nil); err != nil {
		return nil, fmt.Errorf("send request to queue %s: %w", o.queue, err)
	}
	fmt.Fprintf(env.stderr, "sent %s request %s for %s to %s; waiting up to %s for the result on %s\n",
		msg.Subject, msg.MessageID, o.target, o.queue, o.wait, o.replyQueue)
	if resultKey == nil {
		fmt.Fprintln(env.stderr, "warning: no --agent-signing-key: the result's signature is not checked")
	}
	for {
		got, err := recv.ReceiveMessages(waitCtx, 1, nil)
		if err != nil {
			if waitCtx.Err() != nil {
				return nil, fmt.Errorf("no result for request %s on queue %s within %s: the agent may be stopped, or it dead-lettered the request without a result (unknown sender or bad signature; see its audit log)", msg.MessageID, o.replyQueue, o.wait)
			}
			return nil, fmt.Errorf("receive from queue %s: %w", o.replyQueue, err)
		}
		for _, rm := range got {
			if sbString(rm.CorrelationID) != msg.MessageID {
				// Another sender's result: hand it back untouched.
				_ = recv.AbandonMessage(waitCtx, rm, nil)
				continue
			}
			reply := bus.FromServiceBus(rm)
			var result *protocol.Result
			if resultKey != nil {
				result, err = protocol.VerifyResult(resultKey, reply)
			} else {
				result, err = protocol.ParseResult(reply.Body)
			}
			if err != nil {
				_ = recv.DeadLetterMessage(waitCtx, rm, &azservicebus.DeadLetterOptions{Reason: sbStringPtr(wire.ReasonUnauthenticated), ErrorDescription: sbStringPtr(err.Error())})
				return nil, fmt.Errorf("result for request %s rejected: %w", msg.MessageID, err)
			}
			if err := recv.CompleteMessage(waitCtx, rm, nil); err != nil {
				return nil, fmt.Errorf("complete the result message: %w", err)
			}
			fmt.Fprintf(env.stdout, "%s\n", reply.Body)
			return result, nil
		}
	}
}

// resultReceiver is what exchange needs from a Receiver or SessionReceiver.
type resultReceiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, message *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, message *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, message *azservicebus.ReceivedMessage, options *azservicebus.DeadLetterOptions) error
	Close(ctx context.Context) error
}

// sbStringPtr maps "" to an unset SDK field.
func sbStringPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// sbString reads an optional SDK field.
func sbString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
