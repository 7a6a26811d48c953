//go:build linux

package wine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// Environment switches: the lane runs only when asked, since it needs Wine
// and takes minutes.
const (
	envRun = "WBAGENT_WINE"     // "1" runs the lane
	envMSI = "WBAGENT_WINE_MSI" // the MSI to install; default: built here
)

// Where things live inside the prefix, as Windows sees them.
const (
	winExe        = `C:\Program Files\wbagent\wbagent.exe`
	winCLIExe     = `C:\wbagent-cli\wbagent.exe`
	winData       = `C:\ProgramData\wbagent`
	winConfig     = winData + `\wbagent.yaml`
	winMSI        = `C:\wbagent.msi`
	winUpgradeMSI = `C:\wbagent-upgrade.msi`
	// upgradeVersion is newer than any build of the checkout. Not 128 or
	// more: Wine 8.0's msi took 255.0.0 for older than 0.0.1 and refused it
	// by the downgrade rule, as if it compared packed versions as signed
	// 32-bit numbers.
	upgradeVersion = "127.0.0"
	serviceKey     = `HKLM\SYSTEM\CurrentControlSet\Services\wbagent`
	sourceKey      = `HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\wbagent`
	requestQ       = "requests"
	replyQ         = "replies"
)

// lane is one run: the private prefix and its logs.
type lane struct {
	t      *testing.T
	ctx    context.Context
	root   string // the repository
	work   string // bin/wine
	prefix string // bin/wine/prefix
	drive  string // prefix/drive_c
	// system is the standard error of Wine's system processes, services
	// included: the +eventlog trace of every Event Log write lands here.
	system string
}

// TestWindowsService is the whole lane, in order; each step needs the
// ones before it.
func TestWindowsService(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("the Windows lane runs with %s=1 (make test-windows): it needs Wine and mingw-w64", envRun)
	}
	for _, tool := range []string{"wine", "wineserver", "wineboot", "x86_64-w64-mingw32-gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install it (as root): apt-get install wine wine64 gcc-mingw-w64-x86-64-win32", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "bin", "wine")
	l := &lane{t: t, ctx: ctx, root: root, work: work, prefix: filepath.Join(work, "prefix"), system: filepath.Join(work, "wine-system.log")}
	l.drive = filepath.Join(l.prefix, "drive_c")

	// The DC and the MSI are slow and independent of the prefix: start
	// them while Wine boots.
	var (
		wg     sync.WaitGroup
		dom    *testbed.Domain
		domErr error
		msi    string
		msiErr error
		up     string
		upErr  error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		dom, domErr = testbed.StartDomain(ctx, testbed.DomainOptions{})
	}()
	go func() {
		defer wg.Done()
		msi, msiErr = l.buildMSI()
	}()
	go func() {
		defer wg.Done()
		up, upErr = l.packageMSI("dist-upgrade", upgradeVersion)
	}()
	l.boot()
	wg.Wait()
	if domErr != nil {
		t.Fatalf("the Windows lane needs a Samba AD DC: %v (run `make deps`)", domErr)
	}
	defer dom.Stop()
	if msiErr != nil {
		t.Fatal(msiErr)
	}
	if upErr != nil {
		t.Fatal(upErr)
	}
	bus, err := testbed.StartBus(ctx, testbed.BusOptions{Queues: []devbus.QueueConfig{{Name: requestQ, LockDuration: 10 * time.Second}, {Name: replyQ}}})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()

	// msiexec /i: the service is registered with the explicit service flag,
	// the Event Log source's message file expands.
	copyFile(t, msi, filepath.Join(l.drive, "wbagent.msi"))
	l.mustWine("msiexec", "/i", winMSI, "/qn", "/l*v", `C:\msi-install.log`)
	// Windows Installer quotes the executable's path; Wine's does not.
	l.wantReg(serviceKey, "ImagePath", `wbagent.exe run --service --config "C:\ProgramData\wbagent\wbagent.yaml"`)
	l.wantReg(sourceKey, "EventMessageFile", "REG_EXPAND_SZ")
	if _, err := os.Stat(filepath.Join(l.drive, "ProgramData", "wbagent", "wbagent.yaml")); err != nil {
		t.Fatalf("the MSI installed no config: %v", err)
	}

	// The exe's smoke commands, on the installed binary.
	if out := l.mustWine(winExe, "version"); !strings.Contains(out, "wbagent") {
		t.Errorf("version: %q", out)
	}
	if out := l.mustWine(winExe, "check", "--offline", "--config", winConfig); !strings.Contains(out, "OK") {
		t.Errorf("check --offline of the shipped config:\n%s", out)
	}
	l.mustWine(winExe, "keygen", "--suite", "x25519", "--dir", winData+`\keys\agent`)
	l.mustWine(winExe, "keygen", "--sender", "--dir", winData+`\keys\sender`)
	// The sender side reads the keys on Linux, where files Wine creates
	// are 0644 and private keys must be 0600.
	filepath.WalkDir(filepath.Join(l.drive, "ProgramData", "wbagent", "keys"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Chmod(p, 0o600)
		}
		return err
	})
	keys, err := testbed.LoadKeys(filepath.Join(l.drive, "ProgramData", "wbagent", "keys"))
	if err != nil {
		t.Fatalf("keys written by keygen under Wine: %v", err)
	}
	files := l.writeConfig(dom, bus, keys)
	l.checkOnline(dom)

	// net start, a real reset applied by the MSI-installed service.
	l.mustWine("net", "start", "wbagent")
	l.waitLog(files.Log, "wbagent is running", 1)
	if out := l.mustWine(winExe, "status"); strings.TrimSpace(out) != "running" {
		t.Errorf("status after net start: %q", out)
	}
	send, err := testbed.NewSender(bus, keys, testbed.SenderOptions{Queue: requestQ, ReplyQueue: replyQ, Secrets: dom.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	first := l.reset(dom, send)

	// net stop: a clean stop in the log, the audit chain intact, the
	// Event Log written (Wine traces what it would store).
	l.mustWine("net", "stop", "wbagent")
	l.waitLog(files.Log, "stopped", 1)
	l.mustWine(winExe, "audit", "verify", winData+`\audit.jsonl`) // exit 0: intact
	l.verifyAudit(files.Audit, first)
	l.wantEventLog(first)

	// An upgrade keeps the configuration, the keys and the service account,
	// even when asked to purge: removing the older version is no uninstall.
	conf, _ := os.ReadFile(files.Config)
	copyFile(t, up, filepath.Join(l.drive, "wbagent-upgrade.msi"))
	l.mustWine("msiexec", "/i", winUpgradeMSI, "PURGEDATA=1", "/qn", "/l*v", `C:\msi-upgrade.log`)
	if out := l.mustWine(winExe, "version"); !strings.Contains(out, upgradeVersion) {
		t.Errorf("version after the upgrade: %q", out)
	}
	if now, _ := os.ReadFile(files.Config); !bytes.Equal(now, conf) {
		t.Errorf("the upgrade changed wbagent.yaml:\n%s", now)
	}
	if _, err := testbed.LoadKeys(filepath.Join(l.drive, "ProgramData", "wbagent", "keys")); err != nil {
		t.Errorf("keys after the upgrade: %v", err)
	}
	l.wantReg(serviceKey, "ImagePath", `wbagent.exe run --service --config "C:\ProgramData\wbagent\wbagent.yaml"`)
	l.wantReg(serviceKey, "ObjectName", "LocalSystem")
	l.wantReg(`HKLM\SOFTWARE\wbagent`, "ServiceAccount", "LocalSystem")

	// msiexec /x: the service goes, ProgramData stays.
	if err := os.MkdirAll(filepath.Join(l.drive, "wbagent-cli"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(l.drive, "Program Files", "wbagent", "wbagent.exe"), filepath.Join(l.drive, "wbagent-cli", "wbagent.exe"))
	l.mustWine("msiexec", "/x", winUpgradeMSI, "/qn", "/l*v", `C:\msi-remove.log`)
	if out, err := l.wine("reg", "query", serviceKey); err == nil || !strings.Contains(out, "Unable to find the specified registry key") {
		t.Errorf("the service is still registered after msiexec /x (%v):\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(l.drive, "Program Files", "wbagent", "wbagent.exe")); err == nil {
		t.Error("msiexec /x left wbagent.exe behind")
	}
	for _, kept := range []string{"wbagent.yaml", "keys/agent/agent-hpke.key", "keys/sender/sender.pub", "audit.jsonl", "state"} {
		if _, err := os.Stat(filepath.Join(l.drive, "ProgramData", "wbagent", filepath.FromSlash(kept))); err != nil {
			t.Errorf("msiexec /x removed %%ProgramData%%\\wbagent\\%s: %v", kept, err)
		}
	}

	// The exe's own install (after msiexec /x took the Event Log source
	// away), again (idempotent), restart of the stopped service (starts
	// it), a second reset, uninstall twice.
	out := l.mustWine(winCLIExe, "install", "--config", winConfig)
	// Wine refuses delayed start: the service stays, with a warning.
	for _, want := range []string{"service wbagent installed", `run --service --config C:\ProgramData\wbagent\wbagent.yaml`,
		"refused delayed automatic start", "the service is installed without it", `C:\ProgramData\wbagent: access limited to SYSTEM, Administrators and NT SERVICE\wbagent`} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	l.wantReg(serviceKey, "ImagePath", `run --service --config C:\ProgramData\wbagent\wbagent.yaml`)
	l.wantReg(sourceKey, "EventMessageFile", "REG_EXPAND_SZ")
	if out := l.mustWine(winCLIExe, "install", "--config", winConfig, "--account", `NT SERVICE\wbagent`); !strings.Contains(out, "service wbagent updated") {
		t.Errorf("second install:\n%s", out)
	}
	// Back to LocalSystem: Wine has no virtual accounts to log on as.
	l.mustWine(winCLIExe, "install", "--config", winConfig)
	if out, err := l.wine(winCLIExe, "status"); err == nil || strings.TrimSpace(out) != "stopped" {
		t.Errorf("status before restart: %q, %v", out, err)
	}
	l.mustWine(winCLIExe, "restart")
	l.waitLog(files.Log, "wbagent is running", 2)
	second := l.reset(dom, send)
	if out := l.mustWine(winCLIExe, "restart"); !strings.Contains(out, "restarted") {
		t.Errorf("restart of the running service: %q", out)
	}
	l.waitLog(files.Log, "wbagent is running", 3)
	out = l.mustWine(winCLIExe, "uninstall")
	for _, want := range []string{"removed service wbagent", "removed Event Log source wbagent"} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall output lacks %q:\n%s", want, out)
		}
	}
	if out := l.mustWine(winCLIExe, "uninstall"); !strings.Contains(out, "nothing to remove") {
		t.Errorf("second uninstall: %q", out)
	}
	l.waitLog(files.Log, "stopped", 3)
	l.verifyAudit(files.Audit, first, second)

	// No password reached a log, the audit trail or a trace.
	if err := dom.Secrets.ScanError(filepath.Join(l.drive, "ProgramData", "wbagent", "logs"), files.Audit, files.StateDir, l.system); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		for _, f := range []string{files.Log, l.system} {
			if b, err := os.ReadFile(f); err == nil {
				t.Logf("%s (last 6 KB):\n%s", f, tail(string(b), 6<<10))
			}
		}
	}

	// Last, since it deletes the logs read above.
	l.purge()
}

// purge proves that only a real uninstall asked to purge removes
// %ProgramData%\wbagent, through the MSI (PURGEDATA=1) and through
// `wbagent uninstall --purge`; a repair and the removal of an older version
// by an upgrade keep it, asked or not.
func (l *lane) purge() {
	t := l.t
	data := filepath.Join(l.drive, "ProgramData", "wbagent")
	// Something the MSI did not install, nested as the agent's state is.
	nested := filepath.Join(data, "state", "purge-check", "record")
	kept := func(step string) {
		t.Helper()
		for _, f := range []string{filepath.Join(data, "wbagent.yaml"), filepath.Join(data, "keys", "agent", "agent-hpke.key"), nested} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("%s removed %s: %v", step, f, err)
			}
		}
	}
	gone := func(step string) {
		t.Helper()
		if _, err := os.Lstat(data); !os.IsNotExist(err) {
			var left []string
			filepath.WalkDir(data, func(p string, _ os.DirEntry, _ error) error { left = append(left, p); return nil })
			t.Fatalf("%s left %%ProgramData%%\\wbagent (%v): %v", step, err, left)
		}
	}
	if err := os.MkdirAll(filepath.Dir(nested), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nested, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	l.mustWine("msiexec", "/i", winMSI, "/qn", "/l*v", `C:\msi-reinstall.log`)
	// A repair (what msiexec /fa sets) asked to purge.
	l.mustWine("msiexec", "/i", winMSI, "REINSTALL=ALL", "REINSTALLMODE=vomus", "PURGEDATA=1", "/qn", "/l*v", `C:\msi-repair.log`)
	kept("a repair with PURGEDATA=1")
	// The older version's removal inside a major upgrade, as
	// RemoveExistingProducts runs it: UPGRADINGPRODUCTCODE names the newer
	// product.
	l.mustWine("msiexec", "/x", winMSI, "PURGEDATA=1", "UPGRADINGPRODUCTCODE={6B2F4E55-0C1D-4C55-9A47-2D1D4D8A5B01}", "/qn", "/l*v", `C:\msi-upgrade-remove.log`)
	kept("the removal of an older version by an upgrade with PURGEDATA=1")
	if _, err := os.Stat(filepath.Join(l.drive, "Program Files", "wbagent", "wbagent.exe")); err == nil {
		t.Fatal("msiexec /x with UPGRADINGPRODUCTCODE did not uninstall")
	}

	// A real uninstall asked to purge.
	l.mustWine("msiexec", "/i", winMSI, "/qn", "/l*v", `C:\msi-reinstall2.log`)
	l.mustWine("msiexec", "/x", winMSI, "PURGEDATA=1", "/qn", "/l*v", `C:\msi-purge.log`)
	gone("msiexec /x PURGEDATA=1")
	if out, err := l.wine("reg", "query", serviceKey); err == nil || !strings.Contains(out, "Unable to find the specified registry key") {
		t.Errorf("the service is still registered after msiexec /x PURGEDATA=1 (%v):\n%s", err, out)
	}

	// The exe's own: without --purge the data stays, with it it goes.
	if err := os.MkdirAll(filepath.Dir(nested), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nested, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.mustWine(winCLIExe, "uninstall")
	if _, err := os.Stat(nested); err != nil {
		t.Fatalf("uninstall without --purge removed %s: %v", nested, err)
	}
	if out := l.mustWine(winCLIExe, "uninstall", "--purge"); !strings.Contains(out, `removed C:\ProgramData\wbagent`) {
		t.Errorf("uninstall --purge output:\n%s", out)
	}
	gone("uninstall --purge")
	if out := l.mustWine(winCLIExe, "uninstall", "--purge"); !strings.Contains(out, "nothing to purge") {
		t.Errorf("second uninstall --purge: %q", out)
	}
}

// boot creates a fresh prefix, keeps its wineserver alive between commands
// (services would die with the last client otherwise) and installs the
// ProcessPrng shim.
func (l *lane) boot() {
	t := l.t
	// A server left by an earlier, interrupted run holds the old prefix.
	_ = l.command("wineserver", "-k").Run()
	if err := os.RemoveAll(l.prefix); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	// Create the prefix first, with a server of its own that exits with
	// it: a persistent server started before the prefix exists ends up
	// with two services.exe, each answering part of the requests.
	bootLog, err := os.Create(filepath.Join(l.work, "wineboot.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer bootLog.Close()
	create := l.command("wineboot", "-i")
	create.Stdout, create.Stderr = bootLog, bootLog
	if err := create.Run(); err != nil {
		t.Fatalf("wineboot -i: %v (see %s)", err, bootLog.Name())
	}
	if err := l.command("wineserver", "-w").Run(); err != nil {
		t.Fatalf("wineserver -w: %v", err)
	}
	// The server forks into the background holding its standard streams:
	// give it none to hold.
	if err := l.command("wineserver", "-p").Run(); err != nil {
		t.Fatalf("wineserver -p: %v", err)
	}
	t.Cleanup(func() {
		kill := exec.Command("wineserver", "-k")
		kill.Env = l.command("wineserver").Env
		if err := kill.Run(); err != nil {
			t.Logf("wineserver -k: %v", err)
		}
	})
	sys, err := os.Create(l.system)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	// Wine's system processes (services.exe and the services it starts)
	// keep the environment and standard error of the process that
	// started them: this one.
	boot := l.command("wineboot")
	boot.Env = append(boot.Env, "WINEDEBUG=-all,+eventlog")
	boot.Stdout, boot.Stderr = sys, sys
	if err := boot.Run(); err != nil {
		t.Fatalf("wineboot: %v (see %s)", err, l.system)
	}
	dll := filepath.Join(l.work, "bcryptprimitives.dll")
	src := filepath.Join(l.root, "internal", "lab", "wine", "testdata")
	if out, err := exec.CommandContext(l.ctx, "x86_64-w64-mingw32-gcc", "-O2", "-shared", "-o", dll,
		filepath.Join(src, "processprng.c"), filepath.Join(src, "processprng.def"), "-ladvapi32").CombinedOutput(); err != nil {
		t.Fatalf("build the ProcessPrng shim: %v\n%s", err, out)
	}
	copyFile(t, dll, filepath.Join(l.drive, "windows", "system32", "bcryptprimitives.dll"))
}

// buildMSI returns the MSI of envMSI, or builds one.
func (l *lane) buildMSI() (string, error) {
	if p := os.Getenv(envMSI); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envMSI, p, err)
		}
		return p, nil
	}
	return l.packageMSI("dist", "0.0.1")
}

// packageMSI builds the packages of version into work/dir with
// installer/package.sh and returns the MSI.
func (l *lane) packageMSI(dir, version string) (string, error) {
	out := filepath.Join(l.work, dir)
	os.RemoveAll(out)
	cmd := exec.CommandContext(l.ctx, filepath.Join(l.root, "installer", "package.sh"), out)
	cmd.Env = append(os.Environ(), "PKG_VERSION="+version)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installer/package.sh: %v\n%s", err, b)
	}
	m, _ := filepath.Glob(filepath.Join(out, "*.msi"))
	if len(m) != 1 {
		return "", fmt.Errorf("installer/package.sh built %v, want one MSI", m)
	}
	return m[0], nil
}

// command is a Wine tool in the lane's prefix, quiet unless asked.
func (l *lane) command(name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(l.ctx, name, args...)
	cmd.Env = append(os.Environ(), "WINEPREFIX="+l.prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "LC_ALL=C.UTF-8")
	// A program that leaves a child holding its output must not hang the lane.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// wine runs a Windows program in the prefix and returns its output. The
// output goes through a file, not a pipe: Wine may start helper processes
// (explorer, a custom action server) that inherit the streams and outlive
// the program. When Wine's launcher itself fails to start the program
// ("ShellExecuteEx failed", seen now and then on a loaded machine) it is
// tried again; the program's own failures are returned as they are.
func (l *lane) wine(args ...string) (string, error) {
	for attempt := 1; ; attempt++ {
		out, err := l.wineOnce(args...)
		if err == nil || attempt == 3 || !strings.Contains(out, "ShellExecuteEx failed") {
			return out, err
		}
		l.t.Logf("wine could not start %s (attempt %d): %s", args[0], attempt, strings.TrimSpace(out))
		time.Sleep(time.Second)
	}
}

func (l *lane) wineOnce(args ...string) (string, error) {
	f, err := os.CreateTemp(l.work, "wine-out-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := l.command("wine", args...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	b, _ := os.ReadFile(f.Name())
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}

func (l *lane) mustWine(args ...string) string {
	l.t.Helper()
	out, err := l.wine(args...)
	if err != nil {
		l.t.Fatalf("wine %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// wantReg checks that the registry value name under key contains want
// (in `reg query` output: name, type, data).
func (l *lane) wantReg(key, name, want string) {
	l.t.Helper()
	out := l.mustWine("reg", "query", key, "/v", name)
	if !strings.Contains(out, want) {
		l.t.Errorf("%s\\%s: want %q in\n%s", key, name, want, out)
	}
}

// writeConfig replaces the MSI's example config with one for this DC and
// bus, as an admin would. Secrets come from files (a service's environment
// is not the caller's).
func (l *lane) writeConfig(dom *testbed.Domain, bus *testbed.Bus, keys *testbed.Keys) *testbed.AgentFiles {
	t := l.t
	data := filepath.Join(l.drive, "ProgramData", "wbagent")
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: data, Queue: requestQ, Keys: keys, GracePeriod: 10 * time.Second}, dom)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, dom.DC.CACertPath(), filepath.Join(data, "dc-ca.pem"))
	for name, s := range map[string]string{"servicebus.secret": bus.ConnectionString().Reveal(), "bind.secret": dom.Service.Password.Reveal()} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(files.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"{env: "+testbed.EnvConnection+"}", `{file: "C:/ProgramData/wbagent/servicebus.secret"}`,
		"{env: "+testbed.EnvBindPassword+"}", `{file: "C:/ProgramData/wbagent/bind.secret"}`,
		`"`+dom.DC.CACertPath()+`"`, `"C:/ProgramData/wbagent/dc-ca.pem"`,
		`"`+l.drive+"/", `"C:/`,
	).Replace(string(b))
	if strings.Contains(text, `"/`) {
		t.Fatalf("the Windows config still names a Linux path:\n%s", text)
	}
	text += "\n# Written by the Windows lane.\n"
	if !strings.Contains(text, "audit:\n  file:") {
		t.Fatalf("unexpected config layout:\n%s", text)
	}
	// The Event Log is the point of the lane; say so even if it becomes
	// the default elsewhere.
	text = strings.Replace(text, "audit:\n", "audit:\n  eventLog: true\n", 1)
	if err := os.WriteFile(files.Config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return files
}

// checkOnline runs the full `check`: every row passes but two kinds. The
// folder ACLs, which Wine does not store (it reports an owner-and-Everyone
// ACL for every file), and the rights on the test domain's OU=Other, which
// is in scope but deliberately not delegated.
func (l *lane) checkOnline(dom *testbed.Domain) {
	t := l.t
	// --json: the text form wraps its rows at 80 columns.
	out, err := l.wine(winExe, "check", "--json", "--config", winConfig)
	var doc struct {
		Rows []struct{ Check, Result, Detail string }
	}
	if i := strings.IndexByte(out, '{'); i < 0 {
		t.Fatalf("check --json printed no document: %v\n%s", err, out)
	} else if jerr := json.NewDecoder(strings.NewReader(out[i:])).Decode(&doc); jerr != nil {
		t.Fatalf("check --json: %v\n%s", jerr, out)
	}
	var access, ok int
	for _, r := range doc.Rows {
		line := r.Result + " " + r.Check + ": " + r.Detail
		switch {
		case r.Result == "FAIL" && strings.Contains(line, "access "):
			access++
		case r.Result == "FAIL" && strings.Contains(line, "rights on "+dom.Other):
		case r.Result == "FAIL":
			t.Errorf("check: %s", line)
		case r.Result == "OK":
			ok++
		}
	}
	if access == 0 && err != nil {
		t.Errorf("check failed without a FAIL row: %v\n%s", err, out)
	}
	if ok < 8 {
		t.Errorf("check passed only %d rows:\n%s", ok, out)
	}
	if t.Failed() {
		t.Fatalf("check under Wine:\n%s", out)
	}
	t.Logf("check under Wine: %d rows OK, %d folder ACL rows FAIL as expected (Wine stores no ACLs)", ok, access)
}

// waitLog waits until the agent's log has n lines with message msg.
func (l *lane) waitLog(path, msg string, n int) {
	l.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		lines, _ := testbed.ReadLog(path)
		got := 0
		for _, ln := range lines {
			if ln.Msg == msg {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) || l.ctx.Err() != nil {
			b, _ := os.ReadFile(path)
			l.t.Fatalf("the agent's log has %d %q lines, want %d:\n%s", got, msg, n, tail(string(b), 4<<10))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// reset sends a reset for a fresh user and checks the DC took the new
// password; it returns the request id.
func (l *lane) reset(dom *testbed.Domain, send *testbed.Sender) string {
	t := l.t
	t.Helper()
	u, err := dom.AddUser(l.ctx, dom.UniqueName("wine"), dom.Staff)
	if err != nil {
		t.Fatal(err)
	}
	spec := send.Spec(wire.OpReset, protocol.Target{UserPrincipalName: u.UPN})
	spec.New = dom.Secrets.New()
	m, err := send.Send(l.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(l.ctx, 2*time.Minute)
	defer cancel()
	res, err := send.Wait(ctx, m.MessageID)
	if err != nil {
		t.Fatalf("no result for the reset: %v", err)
	}
	if res.Code != wire.CodeOK {
		t.Fatalf("reset: %s %s (%s)", res.Code, res.Detail, res.Reason)
	}
	if err := dom.CheckPassword(l.ctx, u, spec.New); err != nil {
		t.Fatalf("the DC refuses the new password the service set: %v", err)
	}
	return res.ID
}

// verifyAudit checks the audit file's hash chain and that it records each
// request.
func (l *lane) verifyAudit(path string, ids ...string) {
	t := l.t
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rep, err := audit.Verify(f); err != nil || !rep.OK() {
		t.Errorf("audit chain: line %d broken (%s), %v", rep.Broken, rep.Reason, err)
	}
	recs, err := testbed.ReadAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		found := false
		for _, r := range recs {
			found = found || r.RequestID == id
		}
		if !found {
			t.Errorf("the audit trail has no record of request %s", id)
		}
	}
}

// wantEventLog finds the Event Log write of request id in Wine's trace.
func (l *lane) wantEventLog(id string) {
	t := l.t
	b, err := os.ReadFile(l.system)
	if err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, ":eventlog:") && strings.Contains(line, "ReportEvent") {
			writes = append(writes, line)
		}
	}
	text := strings.Join(writes, "\n")
	if !strings.Contains(text, "Request: "+id) {
		t.Errorf("no Event Log write for request %s among %d traced writes:\n%s", id, len(writes), tail(text, 4<<10))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
