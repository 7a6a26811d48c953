package sambadc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DelegateScript is the Samba delegation script's path inside installer/ad.
const DelegateScript = "delegate-samba.sh"

// SambaTool runs samba-tool against the DC's local database (no network),
// adding -s and -H, and returns its output.
func (dc *DC) SambaTool(ctx context.Context, args ...string) (string, error) {
	return dc.sambaTool(ctx, append(args, "-H", dc.SamURL()))
}

// sambaTool runs samba-tool with this DC's smb.conf (which alone tells it
// where the database is, for subcommands without -H).
func (dc *DC) sambaTool(ctx context.Context, args []string) (string, error) {
	full := append(append([]string{}, args...), "-s", dc.confPath())
	out, err := exec.CommandContext(ctx, "samba-tool", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("samba-tool %s: %w: %s", strings.Join(args, " "), err, tail(strings.TrimSpace(string(out)), 1000))
	}
	return string(out), nil
}

// Delegate grants account (a sAMAccountName) the writeback rights on ou by
// running the project's installer/ad/delegate-samba.sh, the same script
// administrators run, so the tests prove the script grants enough.
func (dc *DC) Delegate(ctx context.Context, account, ou string) error {
	script, err := dc.scriptPath()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sh", script, "--account", account, "--ou", ou, "--", "-s", dc.confPath(), "-H", dc.SamURL())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("delegate writeback rights on %s to %s with %s: %w: %s", ou, account, script, err, tail(out.String(), 1500))
	}
	return nil
}

// scriptPath finds installer/ad/delegate-samba.sh: Options.ScriptDir, else
// the wbagent checkout holding the working directory, else the checkout
// this file was compiled from.
func (dc *DC) scriptPath() (string, error) {
	var dirs []string
	if dc.opts.ScriptDir != "" {
		dirs = append(dirs, dc.opts.ScriptDir)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, "installer", "ad"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dirs = append(dirs, filepath.Join(filepath.Dir(file), "..", "..", "..", "installer", "ad"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, DelegateScript)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("find installer/ad/" + DelegateScript + ": run from inside the wbagent checkout or set Options.ScriptDir")
}

// ExportKeytab writes the keys of principal (e.g. "svc-wb@CORP.EXAMPLE.TEST"
// or a sAMAccountName) to a keytab file at path, for Kerberos binds.
func (dc *DC) ExportKeytab(ctx context.Context, principal, path string) error {
	if _, err := dc.sambaTool(ctx, []string{"domain", "exportkeytab", path, "--principal=" + principal}); err != nil {
		return fmt.Errorf("export keytab for %s: %w", principal, err)
	}
	return nil
}

func dialer() *net.Dialer { return &net.Dialer{Timeout: 10 * time.Second} }
