package devbus

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// jsSDKVersion is the @azure/service-bus major version the test installs.
const jsSDKVersion = "@azure/service-bus@7"

// jsSDKDir installs @azure/service-bus from npm into the user's cache (once)
// and returns the folder; it skips the test only when node or npm is
// missing.
func jsSDKDir(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: install Node.js (with npm) to run the @azure/service-bus interoperability test")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: install npm to run the @azure/service-bus interoperability test")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir = filepath.Join(cache, "wbagent", "devbus-js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "service-bus", "package.json")); err == nil {
		return node, dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"wbagent-devbus-js","private":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", jsSDKVersion)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s in %s failed (is the npm registry reachable?): %v\n%s", jsSDKVersion, dir, err, out)
	}
	return node, dir
}

// TestJavaScriptSDK sends and receives a message with the official
// JavaScript SDK, then reads a message it sent with the Go SDK.
func TestJavaScriptSDK(t *testing.T) {
	skipShort(t)
	node, dir := jsSDKDir(t)
	script, err := os.ReadFile(filepath.Join("testdata", "jsclient.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jsclient.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, QueueConfig{Name: "js"}, QueueConfig{Name: "js-to-go"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "jsclient.mjs", "js", "js-to-go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEVBUS_CONNECTION_STRING="+srv.ConnectionString().Reveal())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node jsclient.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var got struct {
		Body      string `json:"body"`
		MessageID string `json:"messageId"`
		K         string `json:"k"`
		Seq       string `json:"sequenceNumber"`
		LockToken string `json:"lockToken"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	if got.Body != "hello from js" || got.MessageID != "js-1" || got.K != "v" || got.Seq != "1" || got.LockToken == "" {
		t.Fatalf("the JavaScript SDK received %+v", got)
	}
	if srv.Depth("js") != 0 {
		t.Fatal("the JavaScript SDK's complete did not remove the message")
	}
	c := newClient(t, srv)
	r, _ := c.NewReceiverForQueue("js-to-go", nil)
	m := receiveOne(t, r, 5*time.Second)
	if m.MessageID != "js-2" || string(m.Body) != "from js to go" {
		t.Fatalf("Go received %q %q from the JavaScript SDK", m.MessageID, m.Body)
	}
}
