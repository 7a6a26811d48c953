package sambadc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The loopback addresses handed out are 127.0.0.firstHost..lastHost;
// 127.0.0.1 stays free for everything else.
const (
	firstHost = 10
	lastHost  = 250
)

// addressLease is a loopback address held by this process through an
// exclusive flock on its lock file. The kernel drops the lock when the
// process dies, so a crashed test never leaks an address.
type addressLease struct {
	ip   net.IP
	file *os.File
}

// leaseAddress finds a free 127.0.0.N, locks it and makes sure the loopback
// interface carries it (Samba binds only to addresses an interface has).
// want, when set, asks for that address only.
func leaseAddress(cacheDir, want string) (*addressLease, error) {
	dir := filepath.Join(cacheDir, "addr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create address lock directory: %w", err)
	}
	candidates := make([]int, 0, lastHost-firstHost+1)
	if want != "" {
		ip := net.ParseIP(want).To4()
		if ip == nil || ip[0] != 127 || ip[1] != 0 || ip[2] != 0 {
			return nil, fmt.Errorf("address %q: want 127.0.0.N", want)
		}
		candidates = append(candidates, int(ip[3]))
	} else {
		// Start at a random host so parallel test binaries rarely contend.
		start := rand.IntN(lastHost - firstHost + 1)
		for i := 0; i <= lastHost-firstHost; i++ {
			candidates = append(candidates, firstHost+(start+i)%(lastHost-firstHost+1))
		}
	}
	for _, n := range candidates {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open address lock: %w", err)
		}
		if err := lock(f, false); err != nil {
			f.Close()
			continue
		}
		ip := net.IPv4(127, 0, 0, byte(n)).To4()
		if listening(ip) {
			// Something outside the harness uses this address.
			f.Close()
			continue
		}
		if err := ensureLoopback(ip); err != nil {
			f.Close()
			return nil, err
		}
		_ = f.Truncate(0)
		_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
		return &addressLease{ip: ip, file: f}, nil
	}
	if want != "" {
		return nil, fmt.Errorf("address %s is in use by another DC or program", want)
	}
	return nil, errors.New("no free loopback address in 127.0.0.10-250: too many DCs running; stop some")
}

func (l *addressLease) release() {
	if l != nil && l.file != nil {
		l.file.Close()
		l.file = nil
	}
}

// listening reports whether an LDAP or Kerberos port on ip accepts
// connections.
func listening(ip net.IP) bool {
	for _, port := range []string{"389", "636", "88"} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// ensureLoopback adds ip/32 to lo when no interface carries it yet.
func ensureLoopback(ip net.IP) error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return nil
		}
	}
	out, err := exec.Command("ip", "addr", "add", ip.String()+"/32", "dev", "lo").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "File exists") {
		return fmt.Errorf("add %s to the loopback interface (needs root, or add it beforehand with `ip addr add %s/32 dev lo`): %s: %w",
			ip, ip, strings.TrimSpace(string(out)), err)
	}
	return nil
}
