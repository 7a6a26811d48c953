package testbed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/lab/testkit"
)

// ModuleRoot finds the wbagent checkout: the first folder at or above the
// working directory whose go.mod declares module wbagent.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the wbagent checkout: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module wbagent")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find the wbagent checkout: no go.mod of module wbagent at or above %s: run from inside the checkout", wd)
		}
	}
}

// goTool returns the go command: the one on PATH, else the standard
// install location (make runs tests with a PATH that may lack it).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// BuildAgent builds the wbagent command of the checkout into dir/wbagent
// and returns its path. Test binaries call it once (in TestMain).
func BuildAgent(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "wbagent")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, "./agent")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./agent: %w\n%s", err, b)
	}
	return out, nil
}

// Environment variables through which an agent started here receives its
// secrets; the config files refer to them with {env: NAME}.
const (
	EnvConnection   = "WBAGENT_SB_CONNECTION"
	EnvBindPassword = "WBAGENT_BIND_PASSWORD"
)

// AgentConfig describes one agent's config file. Zero values take the
// defaults noted, chosen so tests run fast.
type AgentConfig struct {
	// Dir receives the config, the state folder, the audit file and the
	// logs. Required.
	Dir string
	// Name is agent.name; default "agent-1".
	Name string
	// Queue and Sessions select the request queue.
	Queue    string
	Sessions bool
	// MaxConcurrent defaults to 4.
	MaxConcurrent int
	// RetryBudget defaults to 3s; MaxLifetime and MaxClockSkew to the
	// agent's defaults.
	RetryBudget  time.Duration
	MaxLifetime  time.Duration
	MaxClockSkew time.Duration
	// GracePeriod defaults to 5s, SessionIdleTimeout to 1s,
	// DirectoryTimeout to 5s, SettleTimeout to 5s.
	GracePeriod        time.Duration
	SessionIdleTimeout time.Duration
	DirectoryTimeout   time.Duration
	SettleTimeout      time.Duration
	// Servers are the DC URLs; default the domain's LDAPS URL.
	Servers []string
	// HTTP serves /healthz, /readyz and /metrics on a free loopback port.
	HTTP bool
	// AllowDisabled lets the agent write disabled accounts.
	AllowDisabled bool
	// MinimalScope writes the shortest scope an admin writes: includeOUs
	// (OU=Staff and OU=Other) only, with no protectedGroups and
	// protectAdminCount left to its default, so that only the agent's
	// built-in protection stands between it and privileged accounts.
	MinimalScope bool
	// AllowPrivileged is scope.allowPrivileged.
	AllowPrivileged []string
	// Keys supplies the key files unless the fields below are set.
	Keys *Keys
	// DecryptionKeys, SigningKey and TrustedSenders (public key files)
	// override Keys.
	DecryptionKeys []string
	SigningKey     string
	TrustedSenders []string
	// LogLevel defaults to info.
	LogLevel string
	// ServiceBusExtra are more lines of the servicebus section (YAML,
	// indented two spaces, each ending in a newline), e.g. transport and
	// proxy settings.
	ServiceBusExtra string
	// Namespace, when set, replaces the connection string: the agent
	// authenticates with the credential in ServiceBusExtra.
	Namespace string
}

// AgentFiles are the files of one configured agent.
type AgentFiles struct {
	Dir, Config, StateDir, Audit, Log, Stderr string
	// HTTPAddr is host:port of /readyz and /metrics; empty without HTTP.
	HTTPAddr string
	Name     string
}

// WriteAgentConfig writes c as a config file for the domain d and returns
// where everything will be. Secrets are not in the file: the connection
// string and the bind password come from EnvConnection and EnvBindPassword
// (see AgentEnv).
func WriteAgentConfig(c AgentConfig, d *Domain) (*AgentFiles, error) {
	if c.Dir == "" {
		return nil, errors.New("write agent config: AgentConfig.Dir is required")
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("write agent config: %w", err)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.RetryBudget, 3*time.Second)
	def(&c.GracePeriod, 5*time.Second)
	def(&c.SessionIdleTimeout, time.Second)
	def(&c.DirectoryTimeout, 5*time.Second)
	def(&c.SettleTimeout, 5*time.Second)
	if c.Name == "" {
		c.Name = "agent-1"
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 4
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if len(c.Servers) == 0 {
		c.Servers = []string{d.DC.LDAPSURL()}
	}
	if c.Keys != nil {
		if len(c.DecryptionKeys) == 0 {
			c.DecryptionKeys = []string{c.Keys.AgentHPKEKey}
		}
		if c.SigningKey == "" {
			c.SigningKey = c.Keys.AgentSignKey
		}
		if len(c.TrustedSenders) == 0 {
			c.TrustedSenders = []string{c.Keys.SenderPub}
		}
	}
	if len(c.DecryptionKeys) == 0 || c.SigningKey == "" || len(c.TrustedSenders) == 0 {
		return nil, errors.New("write agent config: give Keys, or DecryptionKeys, SigningKey and TrustedSenders")
	}
	f := &AgentFiles{
		Dir: c.Dir, Name: c.Name, Config: filepath.Join(c.Dir, "wbagent.yaml"),
		StateDir: filepath.Join(c.Dir, "state"), Audit: filepath.Join(c.Dir, "audit.jsonl"),
		Log: filepath.Join(c.Dir, "agent.log"), Stderr: filepath.Join(c.Dir, "agent.stderr.log"),
	}
	if c.HTTP {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		f.HTTPAddr = addr
	}
	q := Quote
	list := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = q(s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	var senders []string
	for i, s := range c.TrustedSenders {
		senders = append(senders, fmt.Sprintf("{name: sender-%d, publicKey: %s}", i+1, q(s)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nagent:\n  name: %s\n  stateDir: %s\n  decryptionKeys: %s\n  signingKey: %s\n  trustedSenders: [%s]\n  gracePeriod: %s\n",
		q(c.Name), q(f.StateDir), list(c.DecryptionKeys), q(c.SigningKey), strings.Join(senders, ", "), c.GracePeriod)
	endpoint := "connectionString: {env: " + EnvConnection + "}"
	if c.Namespace != "" {
		endpoint = "namespace: " + q(c.Namespace)
	}
	fmt.Fprintf(&b, "servicebus:\n  %s\n  queue: %s\n  sessions: %v\n  maxConcurrent: %d\n  settleTimeout: %s\n  sessionIdleTimeout: %s\n  retry: {maxRetries: 10, retryDelay: 100ms, maxRetryDelay: 1s}\n",
		endpoint, q(c.Queue), c.Sessions, c.MaxConcurrent, c.SettleTimeout, c.SessionIdleTimeout)
	b.WriteString(c.ServiceBusExtra)
	dc := d.DC
	fmt.Fprintf(&b, "directory:\n  domains:\n    - name: %s\n      netbios: %s\n      baseDN: %s\n      servers: %s\n      tls: {caFile: %s, serverName: %s}\n      bind: {method: simple, user: %s, password: {env: %s}}\n",
		q(dc.Realm()), q(dc.NetBIOS()), q(dc.BaseDN()), list(c.Servers), q(dc.CACertPath()), q(dc.ServerName()),
		q(d.Service.UPN), EnvBindPassword)
	if c.MinimalScope {
		fmt.Fprintf(&b, "  scope:\n    includeOUs: %s\n", list([]string{d.Staff, d.Other}))
	} else {
		fmt.Fprintf(&b, "  scope:\n    includeOUs: %s\n    protectAdminCount: true\n    protectedGroups: %s\n",
			list([]string{d.Staff, d.Other}), list([]string{d.DomainAdmins}))
	}
	if len(c.AllowPrivileged) > 0 {
		fmt.Fprintf(&b, "    allowPrivileged: %s\n", list(c.AllowPrivileged))
	}
	fmt.Fprintf(&b, "    allowDisabled: %v\n  timeout: %s\n  poolSize: 4\n", c.AllowDisabled, c.DirectoryTimeout)
	fmt.Fprintf(&b, "requests:\n  retryBudget: %s\n", c.RetryBudget)
	if c.MaxLifetime > 0 {
		fmt.Fprintf(&b, "  maxLifetime: %s\n", c.MaxLifetime)
	}
	if c.MaxClockSkew > 0 {
		fmt.Fprintf(&b, "  maxClockSkew: %s\n", c.MaxClockSkew)
	}
	fmt.Fprintf(&b, "audit:\n  file: %s\nlog:\n  level: %s\n  format: json\n  file: {path: %s}\nhttp:\n  listen: %s\n",
		q(f.Audit), c.LogLevel, q(f.Log), q(f.HTTPAddr))
	if err := os.WriteFile(f.Config, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write agent config: %w", err)
	}
	return f, nil
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// AgentEnv is the environment of an agent process: this process's, plus
// the connection string and the service account's password.
func AgentEnv(b *Bus, d *Domain) []string {
	return append(os.Environ(),
		EnvConnection+"="+b.ConnectionString().Reveal(),
		EnvBindPassword+"="+d.Service.Password.Reveal())
}

// Agent is a `wbagent run` process.
type Agent struct {
	Files *AgentFiles
	bin   string
	env   []string

	cmd    *exec.Cmd
	exited chan struct{}
	exit   error
}

// StartAgent starts `bin run --config f.Config` with env (see AgentEnv).
// Its standard error is appended to f.Stderr.
func StartAgent(bin string, f *AgentFiles, env []string) (*Agent, error) {
	a := &Agent{Files: f, bin: bin, env: env}
	return a, a.start()
}

func (a *Agent) start() error {
	if a.Running() {
		return errors.New("start agent: already running")
	}
	logFile, err := os.OpenFile(a.Files.Stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	cmd := exec.Command(a.bin, "run", "--config", a.Files.Config)
	cmd.Env = a.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The agent dies with the test binary, whatever kills it.
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start agent %s: %w", a.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		logFile.Close()
		a.exit = err
		close(exited)
	}()
	a.cmd, a.exited = cmd, exited
	return nil
}

// PID is the process id of the running (or last) agent process; 0 before
// the first start.
func (a *Agent) PID() int {
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Restart starts the agent again after Stop or Kill, with the same config.
func (a *Agent) Restart() error { return a.start() }

// Running reports whether the process is alive.
func (a *Agent) Running() bool {
	if a.cmd == nil {
		return false
	}
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it returns
// the exit error, if any.
func (a *Agent) Stop(timeout time.Duration) error {
	if a.cmd == nil {
		return nil
	}
	if !testkit.Stop(a.cmd, a.exited, syscall.SIGTERM, timeout) {
		return fmt.Errorf("agent %s did not stop within %s of SIGTERM; killed", a.Files.Name, timeout)
	}
	if a.exit != nil {
		return fmt.Errorf("agent %s: %w (log: %s)", a.Files.Name, a.exit, a.Files.Stderr)
	}
	return nil
}

// Kill ends the process with SIGKILL, as a crash or power cut would, and
// waits for it.
func (a *Agent) Kill() {
	if !a.Running() {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.exited
}

// WaitRunning waits until the agent's log says all its components
// started. Requests sent before it connects wait in the queue.
func (a *Agent) WaitRunning(ctx context.Context) error {
	return a.waitFor(ctx, func(context.Context) bool {
		lines, _ := ReadLog(a.Files.Log)
		for _, l := range lines {
			if l.Msg == "wbagent is running" {
				return true
			}
		}
		return false
	})
}

// WaitReady waits until the agent's /readyz answers 200 (AgentConfig.HTTP
// must be set): the directory and the bus answer and the audit trail
// takes records.
func (a *Agent) WaitReady(ctx context.Context) error {
	if a.Files.HTTPAddr == "" {
		return errors.New("wait for /readyz: the agent serves no HTTP (set AgentConfig.HTTP)")
	}
	return a.waitFor(ctx, a.ready)
}

func (a *Agent) waitFor(ctx context.Context, ok func(context.Context) bool) error {
	for {
		if !a.Running() {
			return fmt.Errorf("agent %s exited: %v (log: %s)", a.Files.Name, a.exit, a.Files.Stderr)
		}
		if ok(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s not ready: %w (log: %s)", a.Files.Name, ctx.Err(), a.Files.Stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (a *Agent) ready(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+a.Files.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Audit reads the agent's audit file.
func (a *Agent) Audit() ([]audit.Record, error) { return ReadAudit(a.Files.Audit) }

// Handled reads the agent's "message handled" log lines.
func (a *Agent) Handled() ([]Handled, error) { return ReadHandled(a.Files.Log) }

// ReadAudit parses an audit file, after the files rotated out of it
// (oldest first); a missing file has no records.
func ReadAudit(path string) ([]audit.Record, error) {
	rotated, err := audit.RotatedFiles(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var recs []audit.Record
	for _, p := range append(rotated, path) {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read audit file: %w", err)
		}
		for i, line := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r audit.Record
			if err := json.Unmarshal(line, &r); err != nil {
				return recs, fmt.Errorf("audit file %s line %d: %w", p, i+1, err)
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// LogLine is one JSON log line of the agent: the message and every field.
type LogLine struct {
	Msg    string
	Fields map[string]any
}

// Str returns a string field, or "".
func (l LogLine) Str(name string) string {
	s, _ := l.Fields[name].(string)
	return s
}

// ReadLog parses the agent's JSON log file; a missing file has no lines,
// and lines that are not JSON (a torn last line) are skipped.
func ReadLog(path string) ([]LogLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	var lines []LogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		lines = append(lines, LogLine{Msg: msg, Fields: m})
	}
	return lines, sc.Err()
}

// Handled is one message the agent's bus consumer carried out.
type Handled struct {
	RequestID, MessageID, Op, Code, Detail, Settle, Reason string
}

// ReadHandled returns the "message handled" lines of an agent's log.
func ReadHandled(path string) ([]Handled, error) {
	lines, err := ReadLog(path)
	var hs []Handled
	for _, l := range lines {
		if l.Msg != "message handled" {
			continue
		}
		hs = append(hs, Handled{RequestID: l.Str("requestId"), MessageID: l.Str("messageId"), Op: l.Str("op"),
			Code: l.Str("code"), Detail: l.Str("detail"), Settle: l.Str("settle"), Reason: l.Str("reason")})
	}
	return hs, err
}
