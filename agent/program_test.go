package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// runOnce runs `wbagent run` with ctx and returns its error and log.
func runOnce(t *testing.T, ctx context.Context, cfgPath string) (string, error) {
	t.Helper()
	var out syncBuffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() { done <- runEnv(ctx, env, []string{"run", "--config", cfgPath}) }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not return\n%s", out.String())
	}
	return "", nil
}

// A signal that arrives while the agent starts (here: before and right
// after) takes the one stop path: run returns without an error and every
// built component is closed, so the next run takes the ledger and audit
// locks and the HTTP port again.
func TestRunSignalDuringStart(t *testing.T) {
	addr := freePort(t)
	cfgPath := writeRunConfig(t, addr)
	for i, delay := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		if delay == 0 {
			cancel()
		} else {
			time.AfterFunc(delay, cancel)
		}
		log, err := runOnce(t, ctx, cfgPath)
		cancel()
		if err != nil {
			t.Fatalf("round %d: run returned %v\n%s", i, err, log)
		}
		if !strings.Contains(log, `"msg":"stopped"`) {
			t.Fatalf("round %d: the ordered stop did not run\n%s", i, log)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatalf("round %d: HTTP still listens after run returned", i)
		}
	}
}

// A start that fails (the HTTP port is taken) is a fatal error: it goes
// through the same stop, and run returns the error for main's exit code.
func TestRunFailedStartStopsAndFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfgPath := writeRunConfig(t, ln.Addr().String())
	log, err := runOnce(t, context.Background(), cfgPath)
	if err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("run with the HTTP port taken returned %v\n%s", err, log)
	}
	if code := exitCode(err, &syncBuffer{}); code != exitError {
		t.Fatalf("exit code %d, want %d", code, exitError)
	}
	if !strings.Contains(log, `"msg":"stopped"`) {
		t.Fatalf("the ordered stop did not run after the failed start\n%s", log)
	}
	ln.Close()
	// Everything the failed run built was closed: a new run can take it.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if log, err := runOnce(t, ctx, cfgPath); err != nil {
		t.Fatalf("run after the failed one: %v\n%s", err, log)
	}
}
