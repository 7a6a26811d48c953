package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/proxy"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
)

// TestResetThroughProxyOverWebSockets is production's network path: the
// agent process reaches the bus only over AMQP over WebSockets over TLS
// (devbus's own CA in servicebus.tls.caFile), through a real HTTP proxy
// (tinyproxy), once open and once requiring basic authentication, while
// the sender uses the plain listener. A reset must come back ok, the
// password must bind, and the proxy's log must show the agent's CONNECT.
func TestResetThroughProxyOverWebSockets(t *testing.T) {
	needDC(t)
	for _, auth := range []bool{false, true} {
		name := "open proxy"
		if auth {
			name = "proxy with basic auth"
		}
		t.Run(name, func(t *testing.T) { resetThroughProxy(t, auth) })
	}
}

func resetThroughProxy(t *testing.T, auth bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	b, err := testbed.StartBus(ctx, testbed.BusOptions{TLSDir: filepath.Join(dir, "bus-tls"),
		Queues: []devbus.QueueConfig{{Name: requestQueue, RequiresSession: true, LockDuration: 5 * time.Second}, {Name: replyQueue}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := testbed.NewKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	send, err := testbed.NewSender(b, keys, testbed.SenderOptions{Queue: requestQueue, Sessions: true, ReplyQueue: replyQueue, Secrets: dom.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	po := proxy.Options{Dir: filepath.Join(dir, "proxy")}
	if auth {
		po.User, po.Password = "wbagent", "Pr0xy-"+dom.UniqueName("pw")
	}
	if err := os.MkdirAll(po.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	px, err := proxy.Start(ctx, po)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	extra := fmt.Sprintf("  transport: websockets\n  tls: {caFile: %q}\n  proxy: %q\n  watchdog: 30s\n",
		filepath.Join(dir, "bus-tls", devbus.CAFile), px.URL().String())
	env := append(os.Environ(),
		testbed.EnvConnection+"="+b.Server.WebSocketConnectionString().Reveal(),
		testbed.EnvBindPassword+"="+dom.Service.Password.Reveal())
	if auth {
		extra += "  proxyAuth: {user: wbagent, password: {env: WBAGENT_PROXY_PASSWORD}}\n"
		env = append(env, "WBAGENT_PROXY_PASSWORD="+po.Password)
	}
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: filepath.Join(dir, "agent"), Queue: requestQueue, Sessions: true,
		Keys: keys, ServiceBusExtra: extra}, dom)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := testbed.StartAgent(bin, files, env)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Stop(30 * time.Second) }()
	if err := agent.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := dom.AddUser(ctx, dom.UniqueName("wsproxy"), dom.Staff)
	if err != nil {
		t.Fatal(err)
	}
	spec := send.Spec(protocol.OpReset, protocol.Target{UserPrincipalName: u.UPN})
	spec.New = dom.Secrets.New()
	m, err := send.Send(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := send.Wait(ctx, m.MessageID)
	if err != nil {
		log, _ := os.ReadFile(files.Log)
		t.Fatalf("no result: %v\nagent log:\n%s\nproxy log:\n%s", err, log, px.Log())
	}
	if res.Code != protocol.CodeOK {
		t.Fatalf("result %s (%s), want ok", res.Code, res.Reason)
	}
	if err := dom.CheckPassword(ctx, u, spec.New); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	ws := "localhost:" + b.Server.WebSocketAddr()[strings.LastIndex(b.Server.WebSocketAddr(), ":")+1:]
	found := false
	for _, c := range px.Connects() {
		found = found || c == ws
	}
	if !found {
		t.Fatalf("the proxy's log has no CONNECT %s:\n%s", ws, px.Log())
	}
	for _, f := range []string{files.Log, files.Stderr, files.Audit, px.LogPath} {
		data, _ := os.ReadFile(f)
		if auth && strings.Contains(string(data), po.Password) {
			t.Errorf("%s holds the proxy password", f)
		}
		for _, l := range dom.Secrets.ScanText(f, data) {
			t.Errorf("password leak: %s", l)
		}
	}
}
