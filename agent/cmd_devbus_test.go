package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
)

func TestParseQueueSpec(t *testing.T) {
	cases := []struct {
		spec string
		want devbus.QueueConfig
		err  string
	}{
		{"q", devbus.QueueConfig{Name: "q"}, ""},
		{"requests,sessions,lock=45s,maxdelivery=3,ttl=15m,dedup=10m,dlexpired",
			devbus.QueueConfig{Name: "requests", RequiresSession: true, LockDuration: 45 * time.Second, MaxDeliveryCount: 3,
				DefaultTTL: 15 * time.Minute, DuplicateDetection: 10 * time.Minute, DeadLetterOnExpiration: true}, ""},
		{"q,dedup=off", devbus.QueueConfig{Name: "q"}, ""},
		{"", devbus.QueueConfig{}, "has no name"},
		{"q,lock=soon", devbus.QueueConfig{}, "not a duration"},
		{"q,maxdelivery=0", devbus.QueueConfig{}, "not a positive number"},
		{"q,sessions=yes", devbus.QueueConfig{}, "unknown option"},
		{"q,color=red", devbus.QueueConfig{}, "unknown option"},
	}
	for _, c := range cases {
		got, err := parseQueueSpec(c.spec)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
}

func TestDevbusNeedsAQueue(t *testing.T) {
	var out, errb bytes.Buffer
	err := runEnv(context.Background(), &cmdEnv{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}, []string{"devbus", "--listen", "127.0.0.1:0"})
	if code := exitCode(err, &errb); code != exitUsage {
		t.Fatalf("exit %d (%v), want usage", code, err)
	}
}

// roundTrip sends one message with the SDK and receives it back.
func devbusRoundTrip(t *testing.T, connStr, queue, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
		t.Fatalf("send to the devbus command: %v", err)
	}
	r, err := c.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != body {
		t.Fatalf("receive from the devbus command: %v %v", msgs, err)
	}
	if err := r.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
}

// TestDevbusCommand runs the command in process: it prints the connection
// string first, serves the SDK, and returns when its context ends.
func TestDevbusCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts devbus")
	}
	d := startDevbusCmd(t, func(k string) string {
		if k == devbusKeyEnv {
			return "a-key-from-the-environment"
		}
		return ""
	}, 1, "devbus", "--listen", "127.0.0.1:0", "--queue", "q,lock=5s")
	line := d.lines[0]
	if !strings.HasPrefix(line, "Endpoint=sb://127.0.0.1:") || !strings.HasSuffix(line, ";SharedAccessKey=a-key-from-the-environment;UseDevelopmentEmulator=true") ||
		!strings.Contains(line, ";SharedAccessKeyName=RootManageSharedAccessKey;") {
		t.Fatalf("first line %q", line)
	}
	devbusRoundTrip(t, line, "q", "in process")
	d.stop(t)
	errb := d.stderr
	if strings.Contains(errb.String(), "a-key-from-the-environment") {
		t.Fatal("the key reached the log")
	}
	if !strings.Contains(errb.String(), `"msg":"devbus listening"`) {
		t.Fatalf("no JSON log on stderr: %s", errb.String())
	}
}

func devbusGoBinary(t *testing.T) string {
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build wbagent: %v", err)
	}
	return p
}

// startDevbusProcess starts the built binary and returns the connection
// string it printed.
func devbusStartProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"devbus"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		l, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "Endpoint=sb://") {
			t.Fatalf("devbus process printed %q first; stderr: %s", l, stderr.String())
		}
		return cmd, l, &stderr
	case <-time.After(30 * time.Second):
		t.Fatalf("devbus process printed nothing; stderr: %s", stderr.String())
	}
	return nil, "", nil
}

func devbusStopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("devbus exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("devbus did not stop on SIGTERM")
	}
}

// TestDevbusProcess builds wbagent, runs `wbagent devbus` as its own
// process and talks to it from this one; a message left in a queue
// survives a restart through --state.
func TestDevbusProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wbagent and starts devbus")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wbagent")
	build := exec.Command(devbusGoBinary(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "devbus.state")
	cmd, cs, _ := devbusStartProcess(t, bin, "--listen", "127.0.0.1:0", "--queue", "q", "--queue", "sq,sessions,lock=5s",
		"--key", "process-key", "--state", state)
	devbusRoundTrip(t, cs, "q", "from another process")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := azservicebus.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.NewSender("q", nil)
	if err := s.SendMessage(ctx, &azservicebus.Message{MessageID: devbusPtr("kept"), Body: []byte("kept")}, nil); err != nil {
		t.Fatal(err)
	}
	_ = c.Close(ctx)
	devbusStopProcess(t, cmd)
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after SIGTERM: %v", err)
	}

	// Same key, new port: the queue definitions come from the state file.
	cmd2, cs2, _ := devbusStartProcess(t, bin, "--listen", "127.0.0.1:0", "--key", "process-key", "--state", state)
	c2, err := azservicebus.NewClientFromConnectionString(cs2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	r, _ := c2.NewReceiverForQueue("q", nil)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 || msgs[0].MessageID != "kept" {
		t.Fatalf("after restart: %v %v", msgs, err)
	}
	if err := r.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	devbusStopProcess(t, cmd2)
}

func devbusPtr[T any](v T) *T { return &v }

// TestDevbusCommandSecureListeners: with --tls-listen and --ws-listen the
// command prints three connection strings, plain, TLS, WebSockets, and
// writes the CA to --tls-dir; the TLS string works with that CA.
func TestDevbusCommandSecureListeners(t *testing.T) {
	if testing.Short() {
		t.Skip("starts devbus")
	}
	dir := t.TempDir()
	d := startDevbusCmd(t, func(string) string { return "" }, 3,
		"devbus", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0",
		"--tls-dir", dir, "--queue", "q")
	lines := d.lines
	if !strings.HasPrefix(lines[0], "Endpoint=sb://127.0.0.1:") || !strings.HasSuffix(lines[0], ";UseDevelopmentEmulator=true") {
		t.Fatalf("plain line %q", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "Endpoint=sb://localhost:") || strings.Contains(l, "UseDevelopmentEmulator") || !strings.Contains(l, "/;SharedAccessKeyName=") {
			t.Fatalf("secure line %q", l)
		}
	}
	if lines[1] == lines[2] {
		t.Fatal("the TLS and WebSocket listeners share a port")
	}
	pool := caPool(t, filepath.Join(dir, devbus.CAFile))
	c, err := azservicebus.NewClientFromConnectionString(lines[1], &azservicebus.ClientOptions{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	sendOne(t, c, "q", "over TLS")
	devbusRoundTrip(t, lines[0], "q", "over TLS") // the plain listener sees the same queue
	d.stop(t)
}

// TestDevbusTLSFlagsNeedEachOther: a secure listener without --tls-dir,
// or --tls-dir alone, is a usage error that says what to add.
func TestDevbusTLSFlagsNeedEachOther(t *testing.T) {
	for _, args := range [][]string{
		{"devbus", "--listen", "127.0.0.1:0", "--queue", "q", "--tls-listen", "127.0.0.1:0"},
		{"devbus", "--listen", "127.0.0.1:0", "--queue", "q", "--tls-dir", t.TempDir()},
	} {
		var out, errb bytes.Buffer
		err := runEnv(context.Background(), &cmdEnv{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}, args)
		if code := exitCode(err, &errb); code != exitUsage || !strings.Contains(err.Error(), "--tls-dir") {
			t.Fatalf("%v: exit %d (%v), want a usage error naming --tls-dir", args, code, err)
		}
	}
}
