package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/secret"
)

// BusOptions configure StartBus.
type BusOptions struct {
	// Queues are created at start.
	Queues []devbus.QueueConfig
	// Binary, when set, runs the broker as `Binary devbus ...` (a separate
	// process, as an admin would); empty runs devbus.Start in this process,
	// where Server offers inspection and fault injection.
	Binary string
	// Dir holds the process's log (devbus.log) and, with State, its state
	// file (devbus.state). Required with Binary.
	Dir string
	// State makes the process keep its queues in Dir/devbus.state across
	// restarts.
	State bool
	// Logger receives the in-process broker's log; nil discards it.
	Logger *zap.Logger
	// TLS adds a listener for AMQP over TLS and WebSockets one for AMQP
	// over WebSockets over TLS, on free loopback ports. Their CA is in
	// Dir/tls/ca.pem (Bus.CAFile) when Dir is set, and always in
	// Bus.CACertPEM.
	TLS, WebSockets bool
	// Entra turns on the Entra ID stand-in on the TLS listeners (one of
	// TLS or WebSockets is needed); Bus.AuthorityHost is its URL. As a
	// process, clients' secrets and certificates go to files in Dir.
	Entra *devbus.EntraOptions
}

// Bus is a running devbus, in process or as a process.
type Bus struct {
	// Server is the in-process broker; nil when it runs as a process.
	Server *devbus.Server
	// LogPath is the process's combined output; empty in process.
	LogPath string
	// StatePath is the process's state file; empty without State.
	StatePath string

	opts   BusOptions
	conn   *secret.Secret
	cmd    *exec.Cmd
	exited chan struct{}

	tlsConn, wsConn *secret.Secret
	caPEM           []byte
	caFile          string
}

// StartBus starts a devbus with opts.Queues.
func StartBus(ctx context.Context, o BusOptions) (*Bus, error) {
	b := &Bus{opts: o}
	if (o.TLS || o.WebSockets) && o.Dir != "" {
		b.caFile = filepath.Join(o.Dir, "tls", devbus.CAFile)
	}
	if o.Binary == "" {
		opts := devbus.Options{Addr: "127.0.0.1:0", Queues: o.Queues, Logger: o.Logger, Entra: o.Entra}
		if o.TLS {
			opts.TLSAddr = "127.0.0.1:0"
		}
		if o.WebSockets {
			opts.WSAddr = "127.0.0.1:0"
		}
		if b.caFile != "" {
			opts.TLSDir = filepath.Dir(b.caFile)
		}
		srv, err := devbus.Start(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("start devbus: %w", err)
		}
		b.Server, b.conn = srv, srv.ConnectionString()
		b.tlsConn, b.wsConn, b.caPEM = srv.TLSConnectionString(), srv.WebSocketConnectionString(), srv.CACertPEM()
		return b, nil
	}
	if o.Dir == "" {
		return nil, errors.New("start devbus process: BusOptions.Dir is required")
	}
	b.LogPath = filepath.Join(o.Dir, "devbus.log")
	if o.State {
		b.StatePath = filepath.Join(o.Dir, "devbus.state")
	}
	if err := b.startProcess(ctx, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return b, nil
}

// QueueFlag renders a queue as the --queue value of `wbagent devbus`.
func QueueFlag(q devbus.QueueConfig) string {
	parts := []string{q.Name}
	if q.RequiresSession {
		parts = append(parts, "sessions")
	}
	if q.LockDuration > 0 {
		parts = append(parts, "lock="+q.LockDuration.String())
	}
	if q.MaxDeliveryCount > 0 {
		parts = append(parts, fmt.Sprintf("maxdelivery=%d", q.MaxDeliveryCount))
	}
	if q.DefaultTTL > 0 {
		parts = append(parts, "ttl="+q.DefaultTTL.String())
	}
	if q.DuplicateDetection > 0 {
		parts = append(parts, "dedup="+q.DuplicateDetection.String())
	}
	return strings.Join(parts, ",")
}

func (b *Bus) startProcess(ctx context.Context, listen, tlsListen, wsListen string) error {
	args := []string{"devbus", "--listen", listen}
	for _, q := range b.opts.Queues {
		args = append(args, "--queue", QueueFlag(q))
	}
	if b.StatePath != "" {
		args = append(args, "--state", b.StatePath)
	}
	secure, err := b.secureArgs(tlsListen, wsListen)
	if err != nil {
		return fmt.Errorf("start devbus process: %w", err)
	}
	args = append(args, secure...)
	want := 1 + len(b.secureLines())
	logFile, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start devbus process: %w", err)
	}
	cmd := exec.Command(b.opts.Binary, args...)
	if b.conn != nil {
		// A restart keeps the key, so clients' connection strings stay
		// valid; the environment keeps it out of the process list.
		cmd.Env = append(os.Environ(), "WBAGENT_DEVBUS_KEY="+connKey(b.conn.Reveal()))
	}
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return fmt.Errorf("start devbus process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start devbus process %s: %w", b.opts.Binary, err)
	}
	exited := make(chan struct{})
	lines := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var first []string
		for sc.Scan() {
			if len(first) < want {
				first = append(first, strings.TrimSpace(sc.Text()))
				if len(first) == want {
					lines <- first
				}
			}
			fmt.Fprintln(logFile, sc.Text())
		}
		if len(first) < want {
			close(lines)
		}
	}()
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case got, ok := <-lines:
		if !ok || !allConnectionStrings(got) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("devbus process did not print its %d connection strings first (see %s)", want, b.LogPath)
		}
		b.conn = secret.FromString(got[0])
		for i, dst := range b.secureLines() {
			*dst = secret.FromString(got[1+i])
		}
	case <-wait.Done():
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("devbus process did not start within 30s (see %s)", b.LogPath)
	}
	b.cmd, b.exited = cmd, exited
	return nil
}

// connKey extracts SharedAccessKey from a connection string.
func connKey(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "SharedAccessKey" {
			return v
		}
	}
	return ""
}

// connHost extracts HOST:PORT from a connection string's Endpoint.
func connHost(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "Endpoint" {
			return strings.TrimSuffix(strings.TrimPrefix(v, "sb://"), "/")
		}
	}
	return ""
}

// ConnectionString is the connection string clients and the agent use.
func (b *Bus) ConnectionString() *secret.Secret { return b.conn }

// Restart stops the broker process (SIGTERM, so it writes its state file)
// and starts it again on the same address with the same key.
func (b *Bus) Restart(ctx context.Context) error {
	if b.cmd == nil {
		return errors.New("restart devbus: only a devbus process can be restarted")
	}
	if err := b.stopProcess(); err != nil {
		return err
	}
	tlsListen, wsListen := "", ""
	if b.tlsConn != nil {
		tlsListen = "127.0.0.1:" + connPort(b.tlsConn.Reveal())
	}
	if b.wsConn != nil {
		wsListen = "127.0.0.1:" + connPort(b.wsConn.Reveal())
	}
	return b.startProcess(ctx, connHost(b.conn.Reveal()), tlsListen, wsListen)
}

func (b *Bus) stopProcess() error {
	if b.cmd == nil {
		return nil
	}
	if !testkit.Stop(b.cmd, b.exited, syscall.SIGTERM, 10*time.Second) {
		return fmt.Errorf("devbus process did not stop within 10s of SIGTERM (see %s)", b.LogPath)
	}
	b.cmd = nil
	return nil
}

// Close stops the broker.
func (b *Bus) Close() error {
	if b.Server != nil {
		return b.Server.Close()
	}
	return b.stopProcess()
}
