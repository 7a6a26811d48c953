package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The Windows service commands are written against scm, the few calls they
// need from the service control manager and the registry, rather than
// through kardianos/service: its Windows installer deletes the service again
// when an optional setting is refused (Wine refuses delayed start), its
// uninstaller removes the Event Log source a second time, and its restart
// fails on a stopped service. The logic below is plain Go, so its tests run
// on every system with a fake scm; scm_windows.go is the real one.

// winState is what the service manager reports for the service.
type winState int

const (
	winNotInstalled winState = iota
	winStopped
	winStartPending
	winRunning
	winStopPending
	winOther // paused or pausing: the agent never pauses, but a manager may say so
)

func (s winState) String() string {
	switch s {
	case winNotInstalled:
		return "not installed"
	case winStopped:
		return "stopped"
	case winStartPending:
		return "starting"
	case winRunning:
		return "running"
	case winStopPending:
		return "stopping"
	}
	return "paused"
}

// winServiceSpec is the service `wbagent install` registers on Windows.
type winServiceSpec struct {
	Name        string
	DisplayName string
	Description string
	// Exe is the absolute path of wbagent.exe; Args follow it on the
	// registered command line.
	Exe  string
	Args []string
	// Account is the service's logon: "" for LocalSystem, a virtual account
	// (NT SERVICE\wbagent) or a gMSA (DOMAIN\name$). None needs a password.
	Account string
	// RecoveryDelay is how long the manager waits before each restart after
	// a failure; RecoveryReset is when it forgets earlier failures.
	RecoveryDelay time.Duration
	RecoveryReset time.Duration
	// DataDir is the folder of the config, locked to DataDirSDDL; so are
	// OtherDirs, the key and state folders the config names outside it.
	DataDir     string
	DataDirSDDL string
	OtherDirs   []string
}

// scm is the Windows service control manager, the Event Log source
// registration and the folder ACLs, as the service commands use them. Every
// method names its own failure; none prints.
type scm interface {
	State(name string) (winState, error)
	Create(s winServiceSpec) error
	// Update rewrites an existing service's command line, account, names
	// and start type to those of s.
	Update(s winServiceSpec) error
	Delete(name string) error
	SetDelayedAutoStart(name string) error
	SetRecovery(name string, delay, reset time.Duration) error
	SetRecoveryOnErrorExit(name string) error
	SetUnrestrictedSID(name string) error
	Start(name string) error
	// Stop asks the service to stop and waits up to timeout until it has.
	Stop(name string, timeout time.Duration) error
	EventSourceExists(name string) (bool, error)
	InstallEventSource(name string) error
	RemoveEventSource(name string) error
	SecureDir(path, sddl string) error
}

// winStopTimeout bounds a stop: the agent's grace period (default 30 s) plus
// time to flush the audit trail.
const winStopTimeout = 90 * time.Second

// winServiceArgs is the registered command line after the executable. The
// explicit --service makes the agent answer the service manager without
// guessing from its session (Wine runs services in session 1, where the
// guess says "console").
func winServiceArgs(configPath string) []string {
	return []string{"run", "--service", "--config", configPath}
}

// winServiceSpecFor builds the spec install registers: the config's folder
// (%ProgramData%\wbagent when installed by the MSI) holds the keys and the
// state and is locked to SYSTEM, Administrators and the service's own SID.
func winServiceSpecFor(exe, configPath, account string, dirs ...string) (winServiceSpec, error) {
	acct, err := winAccount(account)
	if err != nil {
		return winServiceSpec{}, err
	}
	dir := winDir(configPath)
	var others []string
	for _, d := range dirs {
		if d != "" && !winWithin(d, dir) && !slices.ContainsFunc(others, func(o string) bool { return strings.EqualFold(o, d) }) {
			others = append(others, d)
		}
	}
	return winServiceSpec{
		Name:          serviceName,
		DisplayName:   "wbagent password writeback agent",
		Description:   "Applies signed, encrypted password writebacks from Azure Service Bus to Active Directory.",
		Exe:           exe,
		Args:          winServiceArgs(configPath),
		Account:       acct,
		RecoveryDelay: 20 * time.Second,
		RecoveryReset: 24 * time.Hour,
		DataDir:       dir,
		DataDirSDDL:   dataDirSDDL(serviceSID(serviceName)),
		OtherDirs:     others,
	}, nil
}

// winWithin reports whether path is dir or inside it, as Windows compares
// paths (case-insensitive, either slash).
func winWithin(path, dir string) bool {
	norm := func(p string) string { return strings.TrimRight(strings.ToLower(strings.ReplaceAll(p, "/", `\`)), `\`) }
	p, d := norm(path), norm(dir)
	return p == d || strings.HasPrefix(p, d+`\`)
}

// winDir is the folder of a Windows path, whatever system computes it
// (filepath.Dir on Linux does not split at backslashes).
func winDir(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i > 0 {
		if i == 2 && p[1] == ':' { // C:\file
			return p[:3]
		}
		return p[:i]
	}
	return filepath.Dir(p)
}

// winAccount checks the --account value: LocalSystem (the default), the
// service's virtual account or a group managed service account. Accounts
// with a password are refused: the command line is no place for one, and
// Windows would need it re-entered at every rotation.
func winAccount(a string) (string, error) {
	switch {
	case a == "" || strings.EqualFold(a, "LocalSystem") || strings.EqualFold(a, `.\LocalSystem`):
		return "", nil
	case strings.EqualFold(a, `NT SERVICE\`+serviceName):
		return `NT SERVICE\` + serviceName, nil
	case strings.Count(a, `\`) == 1 && strings.HasSuffix(a, "$") && !strings.HasPrefix(a, `\`) && len(a) > 3:
		return a, nil
	}
	return "", fmt.Errorf("service account %q: use LocalSystem (the default), NT SERVICE\\%s (a virtual account) or a gMSA written DOMAIN\\name$; accounts with a password are not supported", a, serviceName)
}

// winInstall registers the service, or brings an existing registration up
// to date, so running it twice is harmless. Settings the manager may refuse
// without harm to the service (delayed start, recovery, the service SID
// type) only warn; the service stays installed.
func winInstall(m scm, out io.Writer, s winServiceSpec) error {
	if err := m.InstallEventSource(s.Name); err != nil {
		return err
	}
	st, err := m.State(s.Name)
	if err != nil {
		return err
	}
	verb := "installed"
	if st == winNotInstalled {
		err = m.Create(s)
	} else {
		verb = "updated"
		err = m.Update(s)
	}
	if err != nil {
		return err
	}
	var warned []string
	optional := []struct {
		what string
		set  func() error
	}{
		{"delayed automatic start", func() error { return m.SetDelayedAutoStart(s.Name) }},
		{fmt.Sprintf("recovery (restart after %s, failures forgotten after %s)", s.RecoveryDelay, s.RecoveryReset), func() error { return m.SetRecovery(s.Name, s.RecoveryDelay, s.RecoveryReset) }},
		{"recovery also on an error exit", func() error { return m.SetRecoveryOnErrorExit(s.Name) }},
		{`an unrestricted service SID (NT SERVICE\` + s.Name + ")", func() error { return m.SetUnrestrictedSID(s.Name) }},
	}
	for _, o := range optional {
		if err := o.set(); err != nil {
			fmt.Fprintf(out, "warning: the service manager refused %s (%v); the service is installed without it\n", o.what, err)
			warned = append(warned, o.what)
		}
	}
	for _, d := range append([]string{s.DataDir}, s.OtherDirs...) {
		if d == "" {
			continue
		}
		if err := m.SecureDir(d, s.DataDirSDDL); err != nil {
			return fmt.Errorf("restrict %s to SYSTEM, Administrators and the service: %w", d, err)
		}
		fmt.Fprintf(out, "%s: access limited to SYSTEM, Administrators and NT SERVICE\\%s\n", d, s.Name)
	}
	account := s.Account
	if account == "" {
		account = "LocalSystem"
	}
	fmt.Fprintf(out, "service %s %s: %s %s (as %s)\n", s.Name, verb, quoteWinArg(s.Exe), strings.Join(quoteWinArgs(s.Args), " "), account)
	if len(warned) > 0 {
		fmt.Fprintf(out, "service %s: %d optional setting(s) not applied: %s\n", s.Name, len(warned), strings.Join(warned, "; "))
	}
	return nil
}

// winUninstall stops and removes the service and its Event Log source,
// whichever of them exist, and says what it removed. The config, keys,
// state and logs stay.
func winUninstall(m scm, out io.Writer, name string) error {
	st, err := m.State(name)
	if err != nil {
		return err
	}
	removed := 0
	if st != winNotInstalled {
		if err := winStopUnlessStopped(m, name, st); err != nil {
			return err
		}
		if err := m.Delete(name); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed service %s\n", name)
		removed++
	}
	ok, err := m.EventSourceExists(name)
	if err != nil {
		return err
	}
	if ok {
		if err := m.RemoveEventSource(name); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed Event Log source %s\n", name)
		removed++
	}
	if removed == 0 {
		fmt.Fprintf(out, "service %s is not installed: nothing to remove\n", name)
	}
	return nil
}

// winPurge deletes dir, the agent's data folder (%ProgramData%\wbagent),
// with everything in it: what `uninstall --purge` and the MSI's PURGEDATA=1
// remove. Anything but an absolute folder named wbagent is refused, so a
// strange %ProgramData% can never make it delete more.
func winPurge(out io.Writer, dir string) error {
	if !filepath.IsAbs(dir) || !strings.EqualFold(filepath.Base(dir), serviceName) {
		return fmt.Errorf("purge %s: not the agent's data folder (an absolute path ending in %s); nothing deleted", dir, serviceName)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "%s does not exist: nothing to purge\n", dir)
		return nil
	}
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("purge %s (close what holds its files open, then run uninstall --purge again): %w", dir, err)
	}
	fmt.Fprintf(out, "removed %s (config, keys, state, audit and logs)\n", dir)
	return nil
}

// removeTree deletes dir and everything below it, deepest first, one plain
// delete each: os.RemoveAll's handle-relative deletes fail under Wine
// ("Invalid function"). Links and junctions are deleted, never followed.
// It goes on past a file it cannot delete and says how many stayed.
func removeTree(dir string) error {
	var paths []string
	if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}); err != nil {
		return fmt.Errorf("list what is in it: %w", err)
	}
	var first error
	failed := 0
	for i := len(paths) - 1; i >= 0; i-- {
		if err := os.Remove(paths[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d entries not deleted, the first: %w", failed, len(paths), first)
	}
	return nil
}

// errWinNotInstalled is returned by the control commands when there is no
// service to control.
var errWinNotInstalled = errors.New("service wbagent is not installed: install it with the MSI or `wbagent install`")

// winStopUnlessStopped stops the service found in state st, waiting up to
// winStopTimeout; the manager fails a stop of a stopped service, so that
// one is left as it is.
func winStopUnlessStopped(m scm, name string, st winState) error {
	if st == winStopped {
		return nil
	}
	return m.Stop(name, winStopTimeout)
}

// winControl runs start, stop and restart. Each ends in the state it names
// whatever the state it found: restart of a stopped service starts it.
func winControl(m scm, out io.Writer, name, verb string) error {
	st, err := m.State(name)
	if err != nil {
		return err
	}
	if st == winNotInstalled {
		return errWinNotInstalled
	}
	switch verb {
	case "stop":
		if st == winStopped {
			fmt.Fprintf(out, "service %s is already stopped\n", name)
			return nil
		}
		if err := m.Stop(name, winStopTimeout); err != nil {
			return err
		}
		fmt.Fprintf(out, "service %s stopped\n", name)
	case "start":
		if st == winRunning || st == winStartPending {
			fmt.Fprintf(out, "service %s is already %s\n", name, st)
			return nil
		}
		if err := m.Start(name); err != nil {
			return err
		}
		fmt.Fprintf(out, "service %s started\n", name)
	case "restart":
		if err := winStopUnlessStopped(m, name, st); err != nil {
			return err
		}
		if err := m.Start(name); err != nil {
			return err
		}
		fmt.Fprintf(out, "service %s restarted\n", name)
	default:
		return fmt.Errorf("unknown service command %q", verb)
	}
	return nil
}

// quoteWinArgs quotes each argument as the Windows command line parser
// (CommandLineToArgvW) reads it back.
func quoteWinArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = quoteWinArg(a)
	}
	return out
}

func quoteWinArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"") {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for _, c := range a {
		switch c {
		case '\\':
			slashes++
			continue
		case '"':
			b.WriteString(strings.Repeat(`\`, 2*slashes+1))
		default:
			b.WriteString(strings.Repeat(`\`, slashes))
		}
		slashes = 0
		b.WriteRune(c)
	}
	b.WriteString(strings.Repeat(`\`, 2*slashes))
	b.WriteByte('"')
	return b.String()
}

// winStatus prints the service's state; anything but running exits 3.
func winStatus(m scm, out io.Writer, name string) error {
	st, err := m.State(name)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, st)
	if st != winRunning {
		return withCode(exitNegative, nil)
	}
	return nil
}
