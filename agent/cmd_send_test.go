package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wbagent/internal/protocol"
)

func TestParseTargetFlag(t *testing.T) {
	for in, want := range map[string]protocol.Target{
		"objectGUID=3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4": {ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
		"immutableId=opvjPjVaPkyUSq6wp5wB1A==":            {ImmutableID: "opvjPjVaPkyUSq6wp5wB1A=="},
		"userPrincipalName=alice@corp.example":            {UserPrincipalName: "alice@corp.example"},
		"sAMAccountName=alice":                            {SAMAccountName: "alice"},
		"sAMAccountName=alice@CORP":                       {SAMAccountName: "alice", Domain: "CORP"},
		"sAMAccountName=a@b@corp.example":                 {SAMAccountName: "a@b", Domain: "corp.example"},
	} {
		got, err := parseTargetFlag(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "alice", "mail=a@b", "objectGUID=", "objectGUID=xyz", "immutableId=abc", "sAMAccountName=@CORP", "sAMAccountName=alice@"} {
		if _, err := parseTargetFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadPasswords(t *testing.T) {
	o := sendOptions{passwordStdin: true, oldStdn: true}
	oldPw, newPw, err := o.readPasswords(strings.NewReader("0ld pass\r\nnew é pass\nrest"))
	if err != nil {
		t.Fatal(err)
	}
	if oldPw.Reveal() != "0ld pass" || newPw.Reveal() != "new é pass" {
		t.Errorf("read %q %q", oldPw.Reveal(), newPw.Reveal())
	}
	o = sendOptions{passwordStdin: true}
	if _, newPw, err = o.readPasswords(strings.NewReader("no newline")); err != nil || newPw.Reveal() != "no newline" {
		t.Errorf("last line without newline: %v", err)
	}
	for name, in := range map[string]string{
		"empty":    "",
		"blank":    "\n",
		"too long": strings.Repeat("x", maxPasswordLine+1) + "\n",
	} {
		if _, _, err := o.readPasswords(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o = sendOptions{passwordStdin: true, oldStdn: true}
	if _, _, err := o.readPasswords(strings.NewReader("only-old\n")); err == nil {
		t.Error("missing new password accepted")
	}
}

// sendKeys makes a sender key and an agent key set for send tests.
func sendKeys(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := protocol.WriteSenderKeys(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteAgentKeys(dir, protocol.SuiteXWing); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSendUsage(t *testing.T) {
	dir := sendKeys(t)
	base := []string{"send", "--connection-string", "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true",
		"--queue", "q", "--reply-queue", "r", "--sender-key", filepath.Join(dir, protocol.SenderKeyFile),
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--target", "sAMAccountName=alice"}
	for name, extra := range map[string][]string{
		"no op":              {},
		"bad op":             {"--op", "delete", "--password-stdin"},
		"reset no password":  {"--op", "reset"},
		"reset with old":     {"--op", "reset", "--password-stdin", "--old-password-stdin"},
		"change without old": {"--op", "change", "--password-stdin"},
		"unlock password":    {"--op", "unlock", "--password-stdin"},
		"zero ttl":           {"--op", "unlock", "--ttl", "0s"},
		"both conn strings":  {"--op", "unlock", "--connection-string-env", "CS"},
		"password flag":      {"--op", "reset", "--password", "secret"},
	} {
		_, errOut, code := runCLI(t, "pw\n", nil, append(append([]string{}, base...), extra...)...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, code, exitUsage, errOut)
		}
	}
	noConn := []string{"send", "--queue", "q", "--reply-queue", "r", "--sender-key", filepath.Join(dir, protocol.SenderKeyFile),
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--target", "sAMAccountName=alice", "--op", "unlock"}
	if _, errOut, code := runCLI(t, "", nil, noConn...); code != exitUsage || !strings.Contains(errOut, "--connection-string") {
		t.Errorf("no connection string: %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "", map[string]string{}, append(noConn, "--connection-string-env", "WB_CS")...); code != exitUsage || !strings.Contains(errOut, "WB_CS") {
		t.Errorf("unset env var: %d %s", code, errOut)
	}
}

func TestSendRefusesReadableSenderKey(t *testing.T) {
	dir := sendKeys(t)
	key := filepath.Join(dir, protocol.SenderKeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", map[string]string{"CS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true"},
		"send", "--connection-string-env", "CS", "--queue", "q", "--reply-queue", "r", "--sender-key", key,
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--op", "unlock", "--target", "sAMAccountName=alice")
	if code != exitError || !strings.Contains(errOut, "chmod 600 "+key) {
		t.Errorf("readable sender key: %d %s", code, errOut)
	}
}

// TestSendNoBus: with nothing listening, send fails with exit 1 within
// --wait, and neither the password nor the connection string's key shows.
func TestSendNoBus(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for connection attempts")
	}
	dir := sendKeys(t)
	const password = "Unshown-Passw0rd!"
	_, errOut, code := runCLI(t, password+"\n", map[string]string{"CS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=TopSecretKey;UseDevelopmentEmulator=true"},
		"send", "--connection-string-env", "CS", "--queue", "q", "--reply-queue", "r",
		"--sender-key", filepath.Join(dir, protocol.SenderKeyFile), "--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile),
		"--op", "reset", "--password-stdin", "--target", "sAMAccountName=alice", "--wait", "2s")
	if code != exitError {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, password) || strings.Contains(errOut, "TopSecretKey") {
		t.Errorf("stderr leaks a secret: %s", errOut)
	}
}
