package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
)

// devbusCmd is the devbus command running in process, with the connection
// strings it printed first.
type devbusCmd struct {
	lines  []string
	stderr *bytes.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startDevbusCmd runs `wbagent args...` with getenv and reads the first
// lines lines of its output (one connection string a listener); the rest
// of stdout is drained so the command never blocks on it.
func startDevbusCmd(t *testing.T, getenv func(string) string, lines int, args ...string) *devbusCmd {
	t.Helper()
	pr, pw := io.Pipe()
	d := &devbusCmd{stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		d.done <- runEnv(ctx, &cmdEnv{stdout: pw, stderr: d.stderr, getenv: getenv}, args)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	for range lines {
		l, err := br.ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("line %d: %v; stderr: %s", len(d.lines)+1, err, d.stderr.String())
		}
		d.lines = append(d.lines, strings.TrimSpace(l))
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	return d
}

// stop ends the command's context and fails unless it returns cleanly in
// time; after it the stderr buffer is no longer written.
func (d *devbusCmd) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("devbus returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("devbus did not stop when its context ended")
	}
}

// caPool is a pool holding the PEM certificates of file, the CA devbus
// wrote to its --tls-dir.
func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// sendOne sends body to queue through c and closes c.
func sendOne(t *testing.T, c *azservicebus.Client, queue, body string) {
	t.Helper()
	defer func() { _ = c.Close(context.Background()) }()
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMessage(testkit.Context(t, 20*time.Second), &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
}
