package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"wbagent/internal/bus"
	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
)

// keySet makes an agent and a sender key set in a temporary folder.
func keySet(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := protocol.WriteAgentKeys(dir, protocol.SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteSenderKeys(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rowNamed finds the row called name.
func rowNamed(t *testing.T, rows []checkRow, name string) checkRow {
	t.Helper()
	for _, r := range rows {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row %q in %+v", name, rows)
	return checkRow{}
}

// wantRow asserts a failing row's words: its detail and its fix.
func wantRow(t *testing.T, r checkRow, detail, fix []string, notFix ...string) {
	t.Helper()
	if r.OK {
		t.Fatalf("%s passed: %+v", r.Name, r)
	}
	for _, w := range detail {
		if !strings.Contains(r.Detail, w) {
			t.Errorf("%s: detail %q lacks %q", r.Name, r.Detail, w)
		}
	}
	for _, w := range fix {
		if !strings.Contains(r.Fix, w) {
			t.Errorf("%s: fix %q lacks %q", r.Name, r.Fix, w)
		}
	}
	for _, w := range notFix {
		if strings.Contains(r.Fix, w) {
			t.Errorf("%s: fix %q must not say %q", r.Name, r.Fix, w)
		}
	}
}

func TestKeyCheckDiagnoses(t *testing.T) {
	dir := keySet(t)
	hpke := filepath.Join(dir, protocol.AgentHPKEKeyFile)
	sign := filepath.Join(dir, protocol.AgentSignKeyFile)
	cfg := func(dec, sig, senderPub string) *config.Config {
		c := &config.Config{}
		c.Agent.DecryptionKeys = []string{dec}
		c.Agent.SigningKey = sig
		c.Agent.TrustedSenders = []config.Sender{{Name: "portal", PublicKey: senderPub}}
		return c
	}
	senderPub := filepath.Join(dir, protocol.SenderPubFile)

	t.Run("all good", func(t *testing.T) {
		for _, r := range keyChecks(cfg(hpke, sign, senderPub)) {
			if !r.OK {
				t.Errorf("%+v", r)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		rows := keyChecks(cfg(filepath.Join(dir, "absent.key"), sign, senderPub))
		wantRow(t, rowNamed(t, rows, "decryption key 1"), []string{"absent.key", "no such file"}, []string{"wbagent keygen"})
	})
	t.Run("public key where a private key belongs", func(t *testing.T) {
		rows := keyChecks(cfg(filepath.Join(dir, protocol.AgentHPKEPubFile), filepath.Join(dir, protocol.AgentSignPubFile), senderPub))
		for _, name := range []string{"decryption key 1", "signing key"} {
			wantRow(t, rowNamed(t, rows, name), []string{"holds a public key", "private key"},
				[]string{"point this setting at the private key file"}, "chmod", "keygen")
		}
	})
	t.Run("private key where a public key belongs", func(t *testing.T) {
		rows := keyChecks(cfg(hpke, sign, filepath.Join(dir, protocol.SenderKeyFile)))
		wantRow(t, rowNamed(t, rows, "sender portal"), []string{"holds a private key", "public key"},
			[]string{"sender.pub"}, "chmod", "keygen")
	})
	t.Run("group-readable private key", func(t *testing.T) {
		if err := os.Chmod(sign, 0o640); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(sign, 0o600)
		rows := keyChecks(cfg(hpke, sign, senderPub))
		wantRow(t, rowNamed(t, rows, "signing key"), []string{"accessible by group or others (mode 0640)"}, []string{"chmod 600 " + sign}, "keygen")
	})
	t.Run("private key owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("giving a file to another user needs root")
		}
		if err := os.Chown(hpke, 65534, -1); err != nil {
			t.Fatal(err)
		}
		defer os.Chown(hpke, 0, -1)
		rows := keyChecks(cfg(hpke, sign, senderPub))
		wantRow(t, rowNamed(t, rows, "decryption key 1"), []string{"not by root, the user the agent runs as"}, []string{"chown root " + hpke}, "keygen")
	})
	// The agent's user cannot open a file that exists (root can open any,
	// so the error is made here): ownership and mode, never keygen.
	t.Run("exists but unreadable", func(t *testing.T) {
		err := &fs.PathError{Op: "open", Path: hpke, Err: syscall.EACCES}
		fix := keyFix(err, hpke, true, "create it with `wbagent keygen --dir DIR`")
		for _, w := range []string{"the file exists", "chown", "chmod 600 " + hpke} {
			if !strings.Contains(fix, w) {
				t.Errorf("fix %q lacks %q", fix, w)
			}
		}
		if strings.Contains(fix, "keygen") {
			t.Errorf("fix %q sends the admin to keygen, which would break trust with every sender", fix)
		}
		if fix := keyFix(&fs.PathError{Op: "open", Path: senderPub, Err: syscall.EACCES}, senderPub, false, ""); !strings.Contains(fix, "chmod 644 "+senderPub) {
			t.Errorf("public key fix %q", fix)
		}
	})
}

func TestSecretFileDiagnoses(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bind.secret")
	if err := os.WriteFile(p, []byte("Bind-Pa55word!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Agent.StateDir = dir
	cfg.Audit.File = filepath.Join(dir, "audit.jsonl")
	cfg.Directory.Domains = []config.Domain{{}}
	cfg.Directory.Domains[0].Bind.Password = &config.SecretRef{File: p}
	env := &cmdEnv{getenv: func(string) string { return "" }}
	name := "secret directory.domains[0].bind.password"
	if r := rowNamed(t, localChecks(cfg, env), name); !r.OK {
		t.Fatalf("a 0600 secret file of our own: %+v", r)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	wantRow(t, rowNamed(t, localChecks(cfg, env), name), []string{"secret file " + p + " is accessible by group or others (mode 0640)"}, []string{"chmod 600 " + p})
	if os.Geteuid() == 0 {
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, -1); err != nil {
			t.Fatal(err)
		}
		wantRow(t, rowNamed(t, localChecks(cfg, env), name), []string{"is owned by nobody, not by root"}, []string{"chown root " + p})
	}
	if _, err := cfg.Directory.Domains[0].Bind.Password.Resolve(env.getenv); err == nil || !strings.Contains(err.Error(), "fix it with: ") {
		t.Fatalf("run resolves a secret file that is not the agent's alone: %v", err)
	}
}

// A queue that does not exist is named, with its namespace, and the fix
// is to create it or correct the name: nothing about sessions.
func TestBusCheckMissingQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("runs devbus on loopback")
	}
	srv := testbed.StartDevbus(context.Background(), t, devbus.Options{Queues: []devbus.QueueConfig{{Name: "requests"}}})
	for _, sessions := range []bool{false, true} {
		cfg := &config.Config{}
		cfg.Agent.Name = "agent-1"
		cfg.ServiceBus.Queue = "requets"
		cfg.ServiceBus.Sessions = sessions
		cfg.ServiceBus.ConnectionString = &config.SecretRef{Value: secret.FromString(srv.ConnectionString().Reveal())}
		rows := busChecks(context.Background(), cfg, func(string) string { return "" })
		ns := bus.Connection{ConnectionString: srv.ConnectionString()}.NamespaceName()
		wantRow(t, rowNamed(t, rows, "service bus queue requets"), []string{"queue requets does not exist in namespace " + ns},
			[]string{"create it, or correct servicebus.queue"}, "session")
	}
}

// Broker errors reach the admin as sentences with their condition, never
// as the SDK's struct dump.
func TestBusCheckUnauthorizedIsASentence(t *testing.T) {
	if testing.Short() {
		t.Skip("runs devbus on loopback")
	}
	srv := testbed.StartDevbus(context.Background(), t, devbus.Options{Queues: []devbus.QueueConfig{{Name: "requests"}}})
	cs := srv.ConnectionString().Reveal()
	i := strings.Index(cs, "SharedAccessKey=")
	wrong := cs[:i] + "SharedAccessKey=d3JvbmcK" + cs[i+len("SharedAccessKey="):][strings.IndexByte(cs[i+len("SharedAccessKey="):]+";", ';'):]
	cfg := &config.Config{}
	cfg.Agent.Name = "agent-1"
	cfg.ServiceBus.Queue = "requests"
	cfg.ServiceBus.ConnectionString = &config.SecretRef{Value: secret.FromString(wrong)}
	r := rowNamed(t, busChecks(context.Background(), cfg, func(string) string { return "" }), "service bus queue requests")
	wantRow(t, r, []string{"the broker answered status 401 (the key or identity is not allowed to do this): the signature does not match"},
		[]string{"Listen rights"})
	for _, bad := range []string{"*Error{", "Info: map", "(unauthorized):", "rpc: failed"} {
		if strings.Contains(r.Detail, bad) {
			t.Errorf("detail %q shows %q", r.Detail, bad)
		}
	}
}
