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
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// secureRun is a devbus with its TLS and WebSocket listeners (and, when
// asked, its Entra ID stand-in), keys, and a sender on the plain listener.
type secureRun struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	bus  *testbed.Bus
	keys *testbed.Keys
	send *testbed.Sender
}

func newSecureRun(t *testing.T, entra *devbus.EntraOptions) *secureRun {
	t.Helper()
	needDC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r := &secureRun{t: t, ctx: ctx, dir: t.TempDir()}
	var err error
	r.bus, err = testbed.StartBus(ctx, testbed.BusOptions{Dir: filepath.Join(r.dir, "bus"), TLS: true, WebSockets: true, Entra: entra,
		Queues: []devbus.QueueConfig{{Name: requestQueue, RequiresSession: true, LockDuration: 5 * time.Second}, {Name: replyQueue}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.bus.Close() })
	if r.keys, err = testbed.NewKeys(filepath.Join(r.dir, "keys")); err != nil {
		t.Fatal(err)
	}
	if r.send, err = testbed.NewSender(r.bus, r.keys, testbed.SenderOptions{Queue: requestQueue, Sessions: true, ReplyQueue: replyQueue, Secrets: dom.Secrets}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.send.Close() })
	return r
}

// caFile is devbus's CA, for servicebus.tls.caFile.
func (r *secureRun) caFile() string { return r.bus.CAFile() }

// wsHost is the WebSocket listener as the agent names it.
func (r *secureRun) wsHost() string {
	a := r.bus.Server.WebSocketAddr()
	return "localhost:" + a[strings.LastIndex(a, ":")+1:]
}

// reset starts an agent process with c (ServiceBusExtra, Namespace) and
// env, sends one reset and checks that it comes back ok and the new
// password binds; secrets must appear in none of the agent's files.
func (r *secureRun) reset(name string, c testbed.AgentConfig, env []string, secrets ...string) {
	t, ctx := r.t, r.ctx
	t.Helper()
	c.Dir, c.Queue, c.Sessions, c.Keys = filepath.Join(r.dir, name), requestQueue, true, r.keys
	files, err := testbed.WriteAgentConfig(c, dom)
	if err != nil {
		t.Fatal(err)
	}
	env = append(append(os.Environ(), testbed.EnvBindPassword+"="+dom.Service.Password.Reveal()), env...)
	agent, err := testbed.StartAgent(bin, files, env)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Stop(30 * time.Second) }()
	if err := agent.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := dom.AddUser(ctx, dom.UniqueName(name), dom.Staff)
	if err != nil {
		t.Fatal(err)
	}
	spec := r.send.Spec(wire.OpReset, protocol.Target{UserPrincipalName: u.UPN})
	spec.New = dom.Secrets.New()
	m, err := r.send.Send(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.send.Wait(ctx, m.MessageID)
	if err != nil {
		log, _ := os.ReadFile(files.Log)
		t.Fatalf("no result: %v\nagent log:\n%s", err, log)
	}
	if res.Code != wire.CodeOK {
		t.Fatalf("result %s (%s), want ok", res.Code, res.Reason)
	}
	if err := dom.CheckPassword(ctx, u, spec.New); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	for _, f := range []string{files.Log, files.Stderr, files.Audit} {
		data, _ := os.ReadFile(f)
		for _, s := range secrets {
			if strings.Contains(string(data), s) {
				t.Errorf("%s holds a credential secret", f)
			}
		}
		for _, l := range dom.Secrets.ScanText(f, data) {
			t.Errorf("password leak: %s", l)
		}
	}
}

// TestResetThroughProxyOverWebSockets is production's network path: the
// agent process reaches the bus only over AMQP over WebSockets over TLS
// (devbus's own CA in servicebus.tls.caFile), through a real HTTP proxy
// (tinyproxy), once open and once requiring basic authentication, while
// the sender uses the plain listener. A reset must come back ok, the
// password must bind, and the proxy's log must show the agent's CONNECT.
func TestResetThroughProxyOverWebSockets(t *testing.T) {
	for _, auth := range []bool{false, true} {
		name := "open proxy"
		if auth {
			name = "proxy with basic auth"
		}
		t.Run(name, func(t *testing.T) {
			r := newSecureRun(t, nil)
			po := proxy.Options{Dir: filepath.Join(r.dir, "proxy")}
			if auth {
				po.User, po.Password = "wbagent", "Pr0xy-"+dom.UniqueName("pw")
			}
			if err := os.MkdirAll(po.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			px, err := proxy.Start(r.ctx, po)
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			extra := fmt.Sprintf("  transport: websockets\n  tls: {caFile: %q}\n  proxy: %q\n", r.caFile(), px.URL().String())
			env := []string{testbed.EnvConnection + "=" + r.bus.Server.WebSocketConnectionString().Reveal()}
			var secrets []string
			if auth {
				extra += "  proxyAuth: {user: wbagent, password: {env: WBAGENT_PROXY_PASSWORD}}\n"
				env = append(env, "WBAGENT_PROXY_PASSWORD="+po.Password)
				secrets = append(secrets, po.Password)
			}
			r.reset("agent", testbed.AgentConfig{ServiceBusExtra: extra}, env, secrets...)
			found := false
			for _, c := range px.Connects() {
				found = found || c == r.wsHost()
			}
			if !found {
				t.Fatalf("the proxy's log has no CONNECT %s:\n%s", r.wsHost(), px.Log())
			}
		})
	}
}

// TestResetWithEntraCredentials: the agent process authenticates to the
// namespace with an Entra ID client secret, then a client certificate,
// against devbus's stand-in (credential.authorityHost, its CA from
// servicebus.tls.caFile): the first over WebSockets through tinyproxy,
// token requests included, the second over AMQP with TLS.
func TestResetWithEntraCredentials(t *testing.T) {
	needDC(t)
	const tenant = "5b1e0c44-wbagent-e2e"
	const clientSecret = "e2e-Client-Secret-value"
	certFile := filepath.Join(t.TempDir(), "app.pem")
	cert := testbed.WriteClientCert(t, certFile, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	r := newSecureRun(t, &devbus.EntraOptions{Tenant: tenant, Clients: []devbus.EntraClient{
		{ID: "app-secret", Secret: secret.FromString(clientSecret), Listen: true, Send: true},
		{ID: "app-cert", Certificate: cert, Listen: true, Send: true},
	}})
	tlsAddr := r.bus.Server.TLSAddr()
	tlsHost := "localhost:" + tlsAddr[strings.LastIndex(tlsAddr, ":")+1:]
	authority := r.bus.AuthorityHost()
	t.Run("clientSecret over websockets through the proxy", func(t *testing.T) {
		r.t = t
		pdir := filepath.Join(r.dir, "proxy")
		if err := os.MkdirAll(pdir, 0o700); err != nil {
			t.Fatal(err)
		}
		px, err := proxy.Start(r.ctx, proxy.Options{Dir: pdir})
		if err != nil {
			t.Fatal(err)
		}
		defer px.Close()
		extra := fmt.Sprintf("  transport: websockets\n  proxy: %q\n  tls: {caFile: %q}\n  credential: {type: clientSecret, tenantId: %s, clientId: app-secret, clientSecret: {env: WBAGENT_CLIENT_SECRET}, authorityHost: %q}\n",
			px.URL().String(), r.caFile(), tenant, authority)
		r.reset("secret", testbed.AgentConfig{Namespace: r.wsHost(), ServiceBusExtra: extra}, []string{"WBAGENT_CLIENT_SECRET=" + clientSecret}, clientSecret)
		if n := r.bus.Server.EntraTokensIssued("app-secret"); n == 0 {
			t.Fatal("the stand-in issued no token to app-secret")
		}
		// The token request takes the proxy too: both hops are CONNECTs.
		authorityHost := strings.TrimSuffix(strings.TrimPrefix(authority, "https://"), "/")
		seen := map[string]bool{}
		for _, c := range px.Connects() {
			seen[c] = true
		}
		if !seen[r.wsHost()] || !seen[authorityHost] {
			t.Fatalf("the proxy saw CONNECT to %v, want %s and %s", px.Connects(), r.wsHost(), authorityHost)
		}
	})
	t.Run("clientCertificate over amqp", func(t *testing.T) {
		r.t = t
		extra := fmt.Sprintf("  transport: amqp\n  tls: {caFile: %q}\n  credential: {type: clientCertificate, tenantId: %s, clientId: app-cert, certificateFile: %q, authorityHost: %q}\n",
			r.caFile(), tenant, certFile, authority)
		r.reset("cert", testbed.AgentConfig{Namespace: tlsHost, ServiceBusExtra: extra}, nil)
		if n := r.bus.Server.EntraTokensIssued("app-cert"); n == 0 {
			t.Fatal("the stand-in issued no token to app-cert")
		}
	})
}

// TestWatchdogRecoversAStalledAgent: devbus silences the agent process's
// connection (no detach, no error); a reset sent then must still come
// back ok, through the connection the watchdog rebuilds, and the agent's
// log must say so.
func TestWatchdogRecoversAStalledAgent(t *testing.T) {
	r := newSecureRun(t, nil)
	c := testbed.AgentConfig{Dir: filepath.Join(r.dir, "agent"), Queue: requestQueue, Sessions: true, Keys: r.keys,
		ServiceBusExtra: "  watchdog: 5s\n"}
	files, err := testbed.WriteAgentConfig(c, dom)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := testbed.StartAgent(bin, files, testbed.AgentEnv(r.bus, dom))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Stop(30 * time.Second) }()
	if err := agent.WaitRunning(r.ctx); err != nil {
		t.Fatal(err)
	}
	reset := func(name string) time.Duration {
		u, err := dom.AddUser(r.ctx, dom.UniqueName(name), dom.Staff)
		if err != nil {
			t.Fatal(err)
		}
		spec := r.send.Spec(wire.OpReset, protocol.Target{UserPrincipalName: u.UPN})
		spec.New = dom.Secrets.New()
		start := time.Now()
		m, err := r.send.Send(r.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.send.Wait(r.ctx, m.MessageID)
		if err != nil || res.Code != wire.CodeOK {
			log, _ := os.ReadFile(files.Log)
			t.Fatalf("reset %s: %v %+v\nagent log:\n%s", name, err, res, log)
		}
		if err := dom.CheckPassword(r.ctx, u, spec.New); err != nil {
			t.Fatalf("the new password does not bind: %v", err)
		}
		return time.Since(start)
	}
	reset("before")
	n, err := r.bus.Server.StallReceivers(requestQueue)
	if err != nil || n == 0 {
		t.Fatalf("stalled %d connections: %v", n, err)
	}
	took := reset("stalled")
	t.Logf("the reset sent after the stall was answered in %s (watchdog 5s)", took.Round(10*time.Millisecond))
	log, _ := os.ReadFile(files.Log)
	if !strings.Contains(string(log), "rebuilding the connection and receivers") {
		t.Fatalf("the agent did not log a rebuild:\n%s", log)
	}
}
