package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
)

func TestParseEntraClient(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("pw\n"), 0o600)
	certFile := filepath.Join(dir, "cert.pem")
	testbed.WriteClientCert(t, certFile, time.Now(), time.Now().Add(time.Hour))
	// A key before the certificate, as in a combined PEM, is skipped.
	combined, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := pem.Decode(combined)
	os.WriteFile(certFile, append(key, pem.EncodeToMemory(cert)...), 0o600)

	c, err := parseEntraClient("app1=secret:" + secretFile + ",listen")
	if err != nil || c.ID != "app1" || string(c.Secret.Bytes()) != "pw" || !c.Listen || c.Send || c.Certificate != nil {
		t.Fatalf("secret client: %+v %v", c, err)
	}
	c, err = parseEntraClient("app2=cert:" + certFile + ",listen,send")
	if err != nil || c.Certificate == nil || c.Secret != nil || !c.Listen || !c.Send {
		t.Fatalf("cert client: %+v %v", c, err)
	}
	for spec, want := range map[string]string{
		"app":                             "write ID=",
		"=secret:" + secretFile:           "write ID=",
		"app=password:x":                  "unknown credential kind",
		"app=secret:":                     "secret:FILE or cert:FILE",
		"app=secret:/nonexistent/file":    "read the secret file",
		"app=cert:" + secretFile:          "no PEM CERTIFICATE",
		"app=secret:" + secretFile + ",x": "unknown right",
	} {
		if _, err := parseEntraClient(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", spec, err, want)
		}
	}
}

// TestDevbusCommandEntra runs the command with the Entra ID stand-in: an
// app registered with a secret file gets a token from
// https://localhost:TLSPORT/ and uses it over TLS.
func TestDevbusCommandEntra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts devbus")
	}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "app.secret")
	if err := os.WriteFile(secretFile, []byte("app-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDevbusCmd(t, func(string) string { return "" }, 2,
		"devbus", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--tls-dir", dir, "--queue", "q",
		"--entra-tenant", "contoso-test", "--entra-client", "app-1=secret:"+secretFile+",listen,send",
		"--entra-token-lifetime", "10m")
	lines := d.lines
	host := strings.TrimSuffix(strings.TrimPrefix(strings.Split(lines[1], ";")[0], "Endpoint=sb://"), "/")
	pool := caPool(t, filepath.Join(dir, "ca.pem"))
	c, err := testbed.EntraSecretClient("https://"+host+"/", host, pool, "contoso-test", "app-1", "app-secret-value")
	if err != nil {
		t.Fatal(err)
	}
	sendOne(t, c, "q", "with Entra ID")
	devbusRoundTrip(t, lines[0], "q", "with Entra ID")
	d.stop(t)
	errb := d.stderr
	if strings.Contains(errb.String(), "app-secret-value") {
		t.Fatal("the client secret reached the log")
	}
	if !strings.Contains(errb.String(), `"authorityHost":"https://localhost:`) {
		t.Fatalf("the log does not name the authority host: %s", errb.String())
	}
}

// TestDevbusEntraFlagsNeedEachOther: the stand-in needs a TLS listener,
// and clients need a tenant.
func TestDevbusEntraFlagsNeedEachOther(t *testing.T) {
	for _, args := range [][]string{
		{"devbus", "--listen", "127.0.0.1:0", "--queue", "q", "--entra-tenant", "t"},
		{"devbus", "--listen", "127.0.0.1:0", "--queue", "q", "--entra-client", "a=secret:" + os.Args[0]},
	} {
		var out, errb bytes.Buffer
		err := runEnv(context.Background(), &cmdEnv{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}, args)
		if code := exitCode(err, &errb); code != exitUsage {
			t.Fatalf("%v: exit %d (%v), want a usage error", args, code, err)
		}
	}
}
