package sambadc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/secret"
)

// Options configure a DC. The zero value starts corp.example.test (CORP).
type Options struct {
	// Realm is the domain's DNS name, e.g. corp.example.test.
	Realm string
	// NetBIOS is the domain's NetBIOS name, e.g. CORP.
	NetBIOS string
	// Address asks for a specific 127.0.0.N; empty picks a free one.
	Address string
	// CacheDir holds templates and address locks; default
	// $TMPDIR/wbagent-sambadc.
	CacheDir string
	// Output, when set, also receives Samba's own output (its log goes to
	// log/samba.log in the DC's directory either way).
	Output io.Writer
	// LogLevel is Samba's debug level (default 1).
	LogLevel int
	// StartTimeout bounds each start and restart (default 60 s).
	StartTimeout time.Duration
	// KeepDir leaves the DC's directory in place after Stop, for debugging.
	KeepDir bool
	// ScriptDir is the folder with delegate-samba.sh; default: installer/ad
	// of the wbagent checkout that contains the working directory.
	ScriptDir string
	// SambaCert lets Samba generate its own certificate on first start
	// (tls enabled = yes and no keyfile/certfile: it writes
	// private/tls/{key,cert,ca}.pem), as a DC nobody re-keyed serves it:
	// the host only in the subject CN, a random serial that is negative
	// about half the time. A test binary using it needs
	// //go:debug x509negativeserial=1 to parse that certificate.
	SambaCert bool
}

// DC is a running (or killed, restartable) Samba AD DC.
type DC struct {
	opts      Options
	realm     string // lower case DNS name
	netbios   string
	dir       string
	lease     *addressLease
	adminPass *secret.Secret
	caPool    *x509.CertPool

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	output  *bytes.Buffer // Samba's recent output, for error messages
	admin   *ldap.Conn
	stopped bool
}

// Start provisions (or copies a cached) domain into a new temporary
// directory, starts Samba on a free loopback address and waits until LDAPS,
// the global catalog and the KDC answer.
func Start(ctx context.Context, opts Options) (*DC, error) {
	if supported != nil {
		return nil, supported
	}
	if opts.Realm == "" {
		opts.Realm = "corp.example.test"
	}
	if opts.NetBIOS == "" {
		opts.NetBIOS = strings.ToUpper(strings.SplitN(opts.Realm, ".", 2)[0])
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(os.TempDir(), "wbagent-sambadc")
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = 1
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	tmpl, err := template(ctx, opts.CacheDir, opts.Realm, opts.NetBIOS)
	if err != nil {
		return nil, err
	}
	pass, err := os.ReadFile(filepath.Join(tmpl, adminPassFile))
	if err != nil {
		return nil, fmt.Errorf("read template admin password (remove %s to re-provision): %w", tmpl, err)
	}
	lease, err := leaseAddress(opts.CacheDir, opts.Address)
	if err != nil {
		return nil, err
	}
	removeOrphans()
	// A short directory name: Samba's Unix sockets live below it and their
	// paths may not exceed 108 bytes.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		lease.release()
		return nil, fmt.Errorf("create DC directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		lease.release()
		return nil, fmt.Errorf("create DC directory: %w", err)
	}
	dc := &DC{
		opts:      opts,
		realm:     strings.ToLower(opts.Realm),
		netbios:   strings.ToUpper(opts.NetBIOS),
		dir:       dir,
		lease:     lease,
		adminPass: secret.New(pass),
	}
	clear(pass)
	if err := dc.prepare(tmpl); err != nil {
		dc.cleanup()
		return nil, err
	}
	if err := dc.start(ctx); err != nil {
		dc.cleanup()
		return nil, err
	}
	return dc, nil
}

// prepare copies the template and writes smb.conf, TLS files and krb5.conf.
func (dc *DC) prepare(tmpl string) error {
	if err := copyTree(tmpl, dc.dir); err != nil {
		return fmt.Errorf("copy template %s: %w", tmpl, err)
	}
	for _, sub := range []string{"etc", "log", "run", "cache", "state"} {
		if err := os.MkdirAll(filepath.Join(dc.dir, sub), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", sub, err)
		}
	}
	if err := os.WriteFile(dc.confPath(), []byte(dc.smbConf()), 0o644); err != nil {
		return fmt.Errorf("write smb.conf: %w", err)
	}
	if !dc.opts.SambaCert {
		tlsDir := filepath.Join(dc.dir, "private", "tls")
		if err := writeCertificates(tlsDir, dc.ServerName(), dc.lease.ip, time.Now()); err != nil {
			return fmt.Errorf("issue TLS certificate: %w", err)
		}
		if err := dc.loadCA(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(dc.Krb5ConfPath(), []byte(dc.krb5Conf()), 0o644); err != nil {
		return fmt.Errorf("write krb5.conf: %w", err)
	}
	return nil
}

// loadCA reads the CA certificate the DC's certificate chains to.
func (dc *DC) loadCA() error {
	caPEM, err := os.ReadFile(dc.CACertPath())
	if err != nil {
		return fmt.Errorf("read CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("read CA certificate %s: no certificate parses (a negative serial needs //go:debug x509negativeserial=1 in the test binary)", dc.CACertPath())
	}
	dc.caPool = pool
	return nil
}

func (dc *DC) smbConf() string {
	d := dc.dir
	return fmt.Sprintf(`# Written by wbagent's sambadc test harness.
[global]
	netbios name = %s
	realm = %s
	workgroup = %s
	server role = active directory domain controller
	server services = ldap, kdc
	interfaces = %s
	bind interfaces only = yes
	private dir = %s/private
	lock directory = %s
	state directory = %s/state
	cache directory = %s/cache
	pid directory = %s/run
	ncalrpc dir = %s/run/ncalrpc
	binddns dir = %s/bind-dns
	log file = %s/log/samba.log
	logging = file
	log level = %d
	max log size = 20000
	tls enabled = yes
	old password allowed period = 0
	# Kerberos (GSSAPI) binds over LDAPS without a SASL security layer, as
	# Windows DCs and Samba 4.20+ accept them; simple binds still need TLS.
	ldap server require strong auth = allow_sasl_over_tls
	dns update command = /bin/true
	spn update command = /bin/true
`, strings.ToUpper(hostName), strings.ToUpper(dc.realm), dc.netbios, dc.lease.ip,
		d, d, d, d, d, d, d, d, dc.opts.LogLevel)
}

func (dc *DC) krb5Conf() string {
	r := strings.ToUpper(dc.realm)
	return fmt.Sprintf(`[libdefaults]
	default_realm = %s
	dns_lookup_realm = false
	dns_lookup_kdc = false
	udp_preference_limit = 1
	default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
	%s = {
		kdc = %s:88
		admin_server = %s:88
	}

[domain_realm]
	.%s = %s
	%s = %s
`, r, r, dc.lease.ip, dc.lease.ip, dc.realm, r, dc.realm, r)
}

// start launches Samba and waits for it to serve.
func (dc *DC) start(ctx context.Context) error {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.stopped {
		return errStopped
	}
	if dc.cmd != nil {
		return errors.New("start samba: already running")
	}
	// Samba refuses to start while a pid file names a live process, and a
	// killed one leaves its pid file behind.
	_ = os.Remove(filepath.Join(dc.dir, "run", "samba.pid"))
	cmd := exec.Command("samba", "-s", dc.confPath(), "-i", "-M", "single")
	cmd.Dir = dc.dir
	cmd.SysProcAttr = ownGroup()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start samba: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dc.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start samba: %w", err)
	}
	buf := &bytes.Buffer{}
	w := io.MultiWriter(logFile, &lockedWriter{mu: &sync.Mutex{}, w: &ringWriter{buf: buf, max: 16 << 10}})
	if dc.opts.Output != nil {
		w = io.MultiWriter(w, dc.opts.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start samba (install it with `make deps`): %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	dc.cmd, dc.stdin, dc.exited, dc.output = cmd, stdin, exited, buf
	if err := dc.waitReady(ctx, exited); err != nil {
		dc.killLocked()
		return fmt.Errorf("samba on %s did not become ready: %w\nlast output:\n%s\n(log: %s)",
			dc.lease.ip, err, tail(buf.String(), 1500), filepath.Join(dc.dir, "log", "samba.log"))
	}
	return nil
}

// waitReady polls until LDAPS answers a rootDSE search as Administrator and
// the global catalog and KDC ports accept connections.
func (dc *DC) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, dc.opts.StartTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-exited:
			return errors.New("samba exited")
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if last = dc.probe(); last == nil {
			return nil
		}
	}
}

func (dc *DC) probe() error {
	if dc.caPool == nil {
		// Samba writes its own certificate when its LDAP server starts.
		if err := dc.loadCA(); err != nil {
			return err
		}
	}
	for _, port := range []string{"3269", "88"} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(dc.lease.ip.String(), port), time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	conn, err := dc.dialAdmin()
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}

// TLSConfig returns a client TLS configuration that trusts this DC's CA and
// expects its host name. With SambaCert the certificate names the host only
// in its subject CN, which crypto/tls no longer matches, so the chain is
// verified here and the CN compared.
func (dc *DC) TLSConfig() *tls.Config {
	cfg := &tls.Config{RootCAs: dc.caPool, ServerName: dc.ServerName(), MinVersion: tls.VersionTLS12}
	if dc.opts.SambaCert {
		roots, name := dc.caPool, dc.ServerName()
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate presented")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return err
			}
			if !strings.EqualFold(leaf.Subject.CommonName, name) {
				return fmt.Errorf("certificate CN %q is not %s", leaf.Subject.CommonName, name)
			}
			return nil
		}
	}
	return cfg
}

// Kill ends Samba at once (SIGKILL to its process group), as a crash would.
// Restart brings it back with the same data.
func (dc *DC) Kill() {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.killLocked()
}

func (dc *DC) killLocked() {
	if dc.admin != nil {
		dc.admin.Close()
		dc.admin = nil
	}
	if dc.cmd == nil {
		return
	}
	signalGroup(dc.cmd.Process.Pid, true)
	dc.stdin.Close()
	<-dc.exited
	dc.cmd = nil
}

// Restart kills Samba if it runs and starts it again on the same address
// with the same data.
func (dc *DC) Restart(ctx context.Context) error {
	dc.Kill()
	return dc.start(ctx)
}

// Running reports whether Samba's process is alive.
func (dc *DC) Running() bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.cmd == nil {
		return false
	}
	select {
	case <-dc.exited:
		return false
	default:
		return true
	}
}

// Stop ends Samba (closing its standard input, then SIGTERM, then SIGKILL),
// removes the DC's directory unless KeepDir, and frees the address. It is
// safe to call more than once.
func (dc *DC) Stop() error {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.stopped {
		return nil
	}
	dc.stopped = true
	if dc.admin != nil {
		dc.admin.Close()
		dc.admin = nil
	}
	if dc.cmd != nil {
		dc.stdin.Close()
		signalGroup(dc.cmd.Process.Pid, false)
		select {
		case <-dc.exited:
		case <-time.After(5 * time.Second):
			signalGroup(dc.cmd.Process.Pid, true)
			<-dc.exited
		}
		dc.cmd = nil
	}
	dc.cleanup()
	return nil
}

func (dc *DC) cleanup() {
	if !dc.opts.KeepDir {
		_ = os.RemoveAll(dc.dir)
	}
	dc.lease.release()
	dc.adminPass.Destroy()
}

const (
	dirPrefix = "sambadc-"
	ownerFile = "owner.pid"
)

// removeOrphans deletes DC directories whose owning process has died
// without Stop (a test binary killed by its timeout): each holds tens of
// megabytes. Samba itself exits when its owner dies.
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if !alive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

func (dc *DC) confPath() string { return filepath.Join(dc.dir, "etc", "smb.conf") }

// Dir is the DC's directory (smb.conf in etc/, logs in log/).
func (dc *DC) Dir() string { return dc.dir }

// ConfPath is the DC's smb.conf, for samba-tool -s.
func (dc *DC) ConfPath() string { return dc.confPath() }

// SamURL is the local database URL for samba-tool -H.
func (dc *DC) SamURL() string { return "tdb://" + filepath.Join(dc.dir, "private", "sam.ldb") }

// IP is the DC's loopback address.
func (dc *DC) IP() string { return dc.lease.ip.String() }

// Realm is the domain's DNS name in lower case.
func (dc *DC) Realm() string { return dc.realm }

// NetBIOS is the domain's NetBIOS name.
func (dc *DC) NetBIOS() string { return dc.netbios }

// BaseDN is the domain's naming context, e.g. DC=corp,DC=example,DC=test.
func (dc *DC) BaseDN() string {
	parts := strings.Split(dc.realm, ".")
	for i, p := range parts {
		parts[i] = "DC=" + p
	}
	return strings.Join(parts, ",")
}

// ServerName is the DC's host name, the name its certificate carries and
// the host part of its Kerberos service principal.
func (dc *DC) ServerName() string { return hostName + "." + dc.realm }

// LDAPSURL is ldaps://IP:636.
func (dc *DC) LDAPSURL() string { return "ldaps://" + net.JoinHostPort(dc.IP(), "636") }

// LDAPURL is ldap://IP:389 (use StartTLS on it).
func (dc *DC) LDAPURL() string { return "ldap://" + net.JoinHostPort(dc.IP(), "389") }

// GlobalCatalogURL is the global catalog over TLS, ldaps://IP:3269.
func (dc *DC) GlobalCatalogURL() string { return "ldaps://" + net.JoinHostPort(dc.IP(), "3269") }

// KDCAddr is the Kerberos KDC, IP:88.
func (dc *DC) KDCAddr() string { return net.JoinHostPort(dc.IP(), "88") }

// CACertPath is the PEM file of the CA that issued the DC's certificate.
func (dc *DC) CACertPath() string { return filepath.Join(dc.dir, "private", "tls", "ca.pem") }

// Krb5ConfPath is a krb5.conf naming this DC's KDC for its realm.
func (dc *DC) Krb5ConfPath() string { return filepath.Join(dc.dir, "krb5.conf") }

// AdminUPN is the built-in Administrator's bind name. (The account itself
// has no userPrincipalName attribute; AD accepts the implicit UPN.)
func (dc *DC) AdminUPN() string { return "Administrator@" + dc.realm }

// AdminPassword is the Administrator's password. Do not Destroy it.
func (dc *DC) AdminPassword() *secret.Secret { return dc.adminPass }

// lockedWriter serialises writes from Samba's stdout and stderr copiers.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ringWriter keeps the last max bytes written.
type ringWriter struct {
	buf *bytes.Buffer
	max int
}

func (r *ringWriter) Write(p []byte) (int, error) {
	r.buf.Write(p)
	if over := r.buf.Len() - r.max; over > 0 {
		r.buf.Next(over)
	}
	return len(p), nil
}
