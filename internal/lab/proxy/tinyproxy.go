package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"wbagent/internal/lab/testkit"
)

// Options configure Start.
type Options struct {
	// Dir holds the proxy's config and log; required (t.TempDir()).
	Dir string
	// User and Password, when set, make the proxy require basic
	// authentication (tinyproxy BasicAuth).
	User, Password string
	// ConnectPorts, when set, are the only ports the proxy tunnels to with
	// CONNECT (tinyproxy ConnectPort); others get 403.
	ConnectPorts []int
}

// Proxy is a running tinyproxy.
type Proxy struct {
	// Addr is its host:port on loopback.
	Addr string
	// LogPath is its log file (LogLevel Connect: one line per request).
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// Start runs tinyproxy in the foreground on a free loopback port and waits
// until it accepts connections. When tinyproxy is missing and the process
// is root on a Debian-like system it is installed with apt-get, as `make
// deps` would.
func Start(ctx context.Context, o Options) (*Proxy, error) {
	if o.Dir == "" {
		return nil, errors.New("start tinyproxy: Options.Dir is required")
	}
	bin, err := tinyproxyBinary(ctx)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start tinyproxy: %w", err)
	}
	p := &Proxy{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), LogPath: filepath.Join(o.Dir, "tinyproxy.log"), exited: make(chan struct{})}
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %d\nListen 127.0.0.1\nTimeout 120\nMaxClients 64\nAllow 127.0.0.1\nLogLevel Connect\nLogFile %q\nDisableViaHeader Yes\n", port, p.LogPath)
	if o.User != "" {
		fmt.Fprintf(&conf, "BasicAuth %s %s\n", o.User, o.Password)
	}
	for _, cp := range o.ConnectPorts {
		fmt.Fprintf(&conf, "ConnectPort %d\n", cp)
	}
	confPath := filepath.Join(o.Dir, "tinyproxy.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return nil, fmt.Errorf("start tinyproxy: %w", err)
	}
	out, err := os.Create(filepath.Join(o.Dir, "tinyproxy.out"))
	if err != nil {
		return nil, fmt.Errorf("start tinyproxy: %w", err)
	}
	defer out.Close()
	p.cmd = exec.Command(bin, "-d", "-c", confPath)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tinyproxy: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(out.Name())
			return nil, fmt.Errorf("start tinyproxy: it exited: %s", strings.TrimSpace(string(b)))
		case <-ctx.Done():
			p.Close()
			return nil, fmt.Errorf("start tinyproxy: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Close()
			return nil, fmt.Errorf("start tinyproxy: no listener on %s after 20s", p.Addr)
		}
	}
}

// URL is the proxy's http:// URL, without credentials: the agent takes
// those from servicebus.proxyAuth, never from the URL.
func (p *Proxy) URL() *url.URL { return &url.URL{Scheme: "http", Host: p.Addr} }

// Log returns the proxy's log so far, for a failing test to show what the
// proxy saw.
func (p *Proxy) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Connects returns the targets (host:port) of the CONNECT requests in the
// log, in order: the proof that a connection went through the proxy
// rather than around it.
func (p *Proxy) Connects() []string {
	var targets []string
	for _, line := range strings.Split(p.Log(), "\n") {
		_, req, ok := strings.Cut(line, "): CONNECT ")
		if !ok {
			continue
		}
		target, _, _ := strings.Cut(req, " ")
		targets = append(targets, target)
	}
	return targets
}

// Close stops the proxy and waits for it to exit, so its port and log are
// free when the test's temporary folder is removed.
func (p *Proxy) Close() {
	p.once.Do(func() {
		testkit.Stop(p.cmd, p.exited, os.Interrupt, 5*time.Second)
	})
}

// DeadAddr returns a loopback host:port where nothing listens: a proxy
// that is down.
func DeadAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var installOnce sync.Once

// tinyproxyBinary finds tinyproxy, installing it first when missing and
// allowed to.
func tinyproxyBinary(ctx context.Context) (string, error) {
	if bin, err := exec.LookPath("tinyproxy"); err == nil {
		return bin, nil
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		installOnce.Do(func() {
			cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "tinyproxy")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			_ = cmd.Run()
		})
		if bin, err := exec.LookPath("tinyproxy"); err == nil {
			return bin, nil
		}
	}
	return "", errors.New("tinyproxy not found: install it with `make deps` (apt-get install tinyproxy)")
}
