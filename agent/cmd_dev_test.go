package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// `wbagent dev` against a real DC: the command it prints, run as printed,
// resets a password; with the config's keys present it uses them; at exit
// its throwaway folder is gone and no password reached a file.
func TestDev(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "needs a Samba AD DC", 3*time.Minute)
	dom := testbed.StartDomainTest(ctx, t, testbed.DomainOptions{})

	t.Run("throwaway keys, sessions", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "no-such-key")
		files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: dir, Queue: "requests", Sessions: true,
			DecryptionKeys: []string{missing}, SigningKey: missing, TrustedSenders: []string{missing}}, dom)
		if err != nil {
			t.Fatal(err)
		}
		printed, tmp := runDevAndReset(ctx, t, dom, files.Config, dom.Sample.InScope)
		if !strings.Contains(printed, "throwaway agent keys") || !strings.Contains(printed, "--session") {
			t.Fatalf("output does not describe the setup:\n%s", printed)
		}
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Fatalf("throwaway folder %s left behind: %v", tmp, err)
		}
		if err := dom.Secrets.ScanError(dir); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("config keys, plain queue", func(t *testing.T) {
		dir := t.TempDir()
		keys, err := testbed.NewKeys(filepath.Join(dir, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: dir, Queue: "requests", Keys: keys}, dom)
		if err != nil {
			t.Fatal(err)
		}
		printed, _ := runDevAndReset(ctx, t, dom, files.Config, dom.Sample.DistinctUPN)
		if !strings.Contains(printed, "the config's agent keys") || strings.Contains(printed, "--session") {
			t.Fatalf("output does not describe the setup:\n%s", printed)
		}
		if err := dom.Secrets.ScanError(dir); err != nil {
			t.Fatal(err)
		}
	})
}

// runDevAndReset runs `wbagent dev --config cfg`, runs the send command it
// prints for u with a new password, checks the password by binding, stops
// dev mode and returns what it printed and its throwaway folder.
func runDevAndReset(ctx context.Context, t *testing.T, dom *testbed.Domain, cfg string, u *testbed.User) (string, string) {
	t.Helper()
	devCtx, stopDev := context.WithCancel(ctx)
	defer stopDev()
	var out, errOut syncBuffer
	env := &cmdEnv{stdout: &out, stderr: &errOut, getenv: func(k string) string {
		if k == testbed.EnvBindPassword {
			return dom.Service.Password.Reveal()
		}
		return ""
	}}
	done := make(chan error, 1)
	go func() { done <- runEnv(devCtx, env, []string{"dev", "--config", cfg, "--listen", "127.0.0.1:0"}) }()
	var line string
	for line == "" {
		select {
		case err := <-done:
			t.Fatalf("dev exited: %v\n%s\n%s", err, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, " send --connection-string-env") && strings.HasSuffix(l, "--password-stdin") {
				line = l
			}
		}
	}
	printed := out.String()
	t.Logf("wbagent dev printed:\n%s", printed)
	var conn string
	for _, l := range strings.Split(printed, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "export WBAGENT_SB_CONNECTION="); ok {
			conn = strings.Trim(v, "'")
		}
	}
	_, cmdline, _ := strings.Cut(line, " send ")
	args := append([]string{"send"}, strings.Fields(strings.ReplaceAll(cmdline, "userPrincipalName=USER@"+dom.DC.Realm(), "userPrincipalName="+u.UPN))...)
	var tmp string
	for i, a := range args {
		if a == "--sender-key" {
			tmp = filepath.Dir(filepath.Dir(args[i+1]))
		}
	}
	pw := dom.Secrets.New()
	var sendOut, sendErr syncBuffer
	sendEnv := &cmdEnv{stdin: strings.NewReader(pw.Reveal() + "\n"), stdout: &sendOut, stderr: &sendErr,
		getenv: func(k string) string {
			if k == "WBAGENT_SB_CONNECTION" {
				return conn
			}
			return ""
		}}
	if err := runEnv(ctx, sendEnv, args); err != nil {
		t.Fatalf("the printed send command failed: %v\n%s\n%s\ndev log:\n%s", err, sendOut.String(), sendErr.String(), errOut.String())
	}
	res, err := protocol.ParseResult([]byte(strings.TrimSpace(sendOut.String())))
	if err != nil || res.Code != wire.CodeOK {
		t.Fatalf("result %+v %v", res, err)
	}
	if err := dom.CheckPassword(ctx, u, pw); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
	stopDev()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of its context ending")
	}
	return printed, tmp
}
