package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSCM behaves as the Windows service manager and registry do where the
// service commands used to go wrong: removing a missing Event Log source
// fails with "File not found", stopping a stopped service fails with
// "Service not active", and refuse lists the optional settings to reject
// (Wine rejects delayed start with "Invalid level").
type fakeSCM struct {
	state   winState
	spec    winServiceSpec
	source  bool
	refuse  map[string]bool
	applied map[string]bool
	acl     map[string]string
	calls   []string
}

func newFakeSCM() *fakeSCM {
	return &fakeSCM{refuse: map[string]bool{}, applied: map[string]bool{}, acl: map[string]string{}}
}

func (f *fakeSCM) call(c string) { f.calls = append(f.calls, c) }

func (f *fakeSCM) State(string) (winState, error) { return f.state, nil }
func (f *fakeSCM) Create(s winServiceSpec) error {
	f.call("create")
	if f.state != winNotInstalled {
		return errors.New("The specified service already exists.")
	}
	f.state, f.spec = winStopped, s
	return nil
}
func (f *fakeSCM) Update(s winServiceSpec) error {
	f.call("update")
	if f.state == winNotInstalled {
		return errWinNotInstalled
	}
	f.spec = s
	return nil
}
func (f *fakeSCM) Delete(string) error {
	f.call("delete")
	if f.state == winNotInstalled {
		return errWinNotInstalled
	}
	if f.state != winStopped {
		return errors.New("delete of a running service: marked for deletion")
	}
	f.state = winNotInstalled
	f.applied = map[string]bool{}
	return nil
}
func (f *fakeSCM) option(name string) error {
	f.call(name)
	if f.state == winNotInstalled {
		return errWinNotInstalled
	}
	if f.refuse[name] {
		return errors.New("Invalid level.")
	}
	f.applied[name] = true
	return nil
}
func (f *fakeSCM) SetDelayedAutoStart(string) error { return f.option("delayed") }
func (f *fakeSCM) SetRecovery(_ string, delay, reset time.Duration) error {
	if delay != 20*time.Second || reset != 24*time.Hour {
		return fmt.Errorf("recovery %s/%s, want 20s/24h", delay, reset)
	}
	return f.option("recovery")
}
func (f *fakeSCM) SetRecoveryOnErrorExit(string) error { return f.option("recovery-on-error") }
func (f *fakeSCM) SetUnrestrictedSID(string) error     { return f.option("sid") }
func (f *fakeSCM) Start(string) error {
	f.call("start")
	if f.state == winRunning {
		return errors.New("An instance of the service is already running.")
	}
	f.state = winRunning
	return nil
}
func (f *fakeSCM) Stop(string, time.Duration) error {
	f.call("stop")
	if f.state != winRunning {
		return errors.New("Service not active.")
	}
	f.state = winStopped
	return nil
}
func (f *fakeSCM) EventSourceExists(string) (bool, error) { return f.source, nil }
func (f *fakeSCM) InstallEventSource(string) error {
	f.call("source+")
	f.source = true
	return nil
}
func (f *fakeSCM) RemoveEventSource(string) error {
	f.call("source-")
	if !f.source {
		return errors.New("remove Event Log source wbagent: File not found.")
	}
	f.source = false
	return nil
}
func (f *fakeSCM) SecureDir(path, sddl string) error {
	f.call("acl")
	f.acl[path] = sddl
	return nil
}

func testSpec(t *testing.T, account string) winServiceSpec {
	t.Helper()
	s, err := winServiceSpecFor(`C:\Program Files\wbagent\wbagent.exe`, `C:\ProgramData\wbagent\wbagent.yaml`, account)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWinServiceSpec: the registered command line says it is a service, so
// the agent never has to guess (Wine runs services in session 1, where the
// guess said "console" and `net start` timed out with error 1053).
func TestWinServiceSpec(t *testing.T) {
	s := testSpec(t, "")
	if got := strings.Join(s.Args, " "); got != `run --service --config C:\ProgramData\wbagent\wbagent.yaml` {
		t.Errorf("arguments %q", got)
	}
	if s.Account != "" || s.DataDir != `C:\ProgramData\wbagent` || s.RecoveryDelay != 20*time.Second || s.RecoveryReset != 24*time.Hour {
		t.Errorf("spec %+v", s)
	}
	if s.DataDirSDDL != dataDirSDDL(serviceSID("wbagent")) {
		t.Errorf("data folder SDDL %q", s.DataDirSDDL)
	}
	if got := winDir(`C:\wbagent.yaml`); got != `C:\` {
		t.Errorf("winDir at the root: %q", got)
	}
}

func TestWinAccount(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "LocalSystem": "", `.\LocalSystem`: "", `NT SERVICE\wbagent`: `NT SERVICE\wbagent`, `nt service\WBAGENT`: `NT SERVICE\wbagent`,
		`CORP\gmsa-wbagent$`: `CORP\gmsa-wbagent$`,
	} {
		if got, err := winAccount(in); err != nil || got != want {
			t.Errorf("winAccount(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`CORP\alice`, `NT SERVICE\other`, `alice`, `\x$`, `a\b\c$`, "NetworkService"} {
		if _, err := winAccount(bad); err == nil || !strings.Contains(err.Error(), "gMSA") {
			t.Errorf("winAccount(%q): %v, want a refusal that names the choices", bad, err)
		}
	}
}

// TestWinInstallDegrades: a refused optional setting leaves the service
// installed with a warning that names it (kardianos deleted the service
// again and failed when Wine refused delayed start).
func TestWinInstallDegrades(t *testing.T) {
	m := newFakeSCM()
	m.refuse["delayed"] = true
	m.refuse["sid"] = true
	var out bytes.Buffer
	if err := winInstall(m, &out, testSpec(t, `NT SERVICE\wbagent`)); err != nil {
		t.Fatalf("install: %v", err)
	}
	if m.state != winStopped || !m.source || !m.applied["recovery"] || !m.applied["recovery-on-error"] {
		t.Fatalf("after install: state %v, source %v, applied %v", m.state, m.source, m.applied)
	}
	text := out.String()
	for _, want := range []string{"refused delayed automatic start (Invalid level.)", `refused an unrestricted service SID (NT SERVICE\wbagent)`,
		"installed without it", "2 optional setting(s) not applied", `as NT SERVICE\wbagent`,
		`"C:\Program Files\wbagent\wbagent.exe" run --service --config C:\ProgramData\wbagent\wbagent.yaml`} {
		if !strings.Contains(text, want) {
			t.Errorf("install output lacks %q:\n%s", want, text)
		}
	}
	if m.acl[`C:\ProgramData\wbagent`] != dataDirSDDL(serviceSID("wbagent")) {
		t.Errorf("data folder ACL: %v", m.acl)
	}
}

// TestWinInstallIdempotent: a second install updates the registration
// (kardianos failed with "service wbagent already exists").
func TestWinInstallIdempotent(t *testing.T) {
	m := newFakeSCM()
	var out bytes.Buffer
	if err := winInstall(m, &out, testSpec(t, "")); err != nil {
		t.Fatal(err)
	}
	m.state = winRunning
	if err := winInstall(m, &out, testSpec(t, `CORP\gmsa-wbagent$`)); err != nil {
		t.Fatalf("second install: %v", err)
	}
	if m.spec.Account != `CORP\gmsa-wbagent$` || !strings.Contains(out.String(), "service wbagent updated") || !strings.Contains(out.String(), "(as LocalSystem)") {
		t.Errorf("second install: spec %+v\n%s", m.spec, out.String())
	}
	if strings.Count(strings.Join(m.calls, " "), "create") != 1 {
		t.Errorf("calls %v: want one create, then an update", m.calls)
	}
}

// TestWinUninstall: uninstall succeeds whatever of the service and its
// Event Log source exists, removes each once and says what it removed
// (kardianos removed the source, then the agent removed it again and
// exited 1 with "File not found").
func TestWinUninstall(t *testing.T) {
	for _, c := range []struct {
		name   string
		state  winState
		source bool
		want   []string
	}{
		{"running service and source", winRunning, true, []string{"removed service wbagent", "removed Event Log source wbagent"}},
		{"stopped service, no source", winStopped, false, []string{"removed service wbagent"}},
		{"source only (after msiexec /x)", winNotInstalled, true, []string{"removed Event Log source wbagent"}},
		{"nothing", winNotInstalled, false, []string{"not installed: nothing to remove"}},
	} {
		m := newFakeSCM()
		m.state, m.source = c.state, c.source
		var out bytes.Buffer
		if err := winUninstall(m, &out, "wbagent"); err != nil {
			t.Errorf("%s: uninstall: %v", c.name, err)
			continue
		}
		if m.state != winNotInstalled || m.source {
			t.Errorf("%s: left state %v, source %v", c.name, m.state, m.source)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q: %s", c.name, w, out.String())
			}
		}
		if got := strings.Count(out.String(), "removed"); got != len(c.want) && c.want[0] != "not installed: nothing to remove" {
			t.Errorf("%s: output %q", c.name, out.String())
		}
	}
}

// TestWinControl: every command ends in the state it names; restart of a
// stopped service starts it (kardianos failed with "Service not active").
func TestWinControl(t *testing.T) {
	for _, c := range []struct {
		verb       string
		from, want winState
	}{
		{"restart", winStopped, winRunning},
		{"restart", winRunning, winRunning},
		{"start", winStopped, winRunning},
		{"start", winRunning, winRunning},
		{"stop", winRunning, winStopped},
		{"stop", winStopped, winStopped},
	} {
		m := newFakeSCM()
		m.state = c.from
		var out bytes.Buffer
		if err := winControl(m, &out, "wbagent", c.verb); err != nil || m.state != c.want {
			t.Errorf("%s from %v: %v, state %v, want %v (%s)", c.verb, c.from, err, m.state, c.want, out.String())
		}
	}
	m := newFakeSCM()
	for _, verb := range []string{"start", "stop", "restart"} {
		if err := winControl(m, &bytes.Buffer{}, "wbagent", verb); !errors.Is(err, errWinNotInstalled) {
			t.Errorf("%s when not installed: %v", verb, err)
		}
	}
	var out bytes.Buffer
	if err := winStatus(m, &out, "wbagent"); exitCode(err, &bytes.Buffer{}) != exitNegative || out.String() != "not installed\n" {
		t.Errorf("status when not installed: %v %q", err, out.String())
	}
	m.state = winRunning
	out.Reset()
	if err := winStatus(m, &out, "wbagent"); err != nil || out.String() != "running\n" {
		t.Errorf("status when running: %v %q", err, out.String())
	}
}

// TestServiceSIDAndSDDL pins the service SID with one Windows documents and
// checks the descriptor install writes is the one the MSI writes.
func TestServiceSIDAndSDDL(t *testing.T) {
	if got, want := serviceSID("TrustedInstaller"), "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"; got != want {
		t.Errorf("serviceSID(TrustedInstaller) = %s, want %s", got, want)
	}
	sid := serviceSID("wbagent")
	if sid != serviceSID("WBAGENT") {
		t.Error("the service SID must not depend on the name's case")
	}
	want := "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;" + sid + ")"
	if got := dataDirSDDL(sid); got != want {
		t.Errorf("dataDirSDDL = %s, want %s", got, want)
	}
	sql, err := os.ReadFile("../installer/windows/postbuild.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sql), "'"+want+"'") {
		t.Errorf("installer/windows/postbuild.sql does not lock the data folder with %s", want)
	}
	if p := daclProblems(want, []string{sidSystem, sidAdministrators, sid}); len(p) != 0 {
		t.Errorf("the descriptor install writes fails its own check: %v", p)
	}
}

func TestDACLProblems(t *testing.T) {
	sid := serviceSID("wbagent")
	allowed := []string{sidSystem, sidAdministrators, sid}
	for _, c := range []struct {
		name, sddl string
		want       []string
	}{
		{"locked", "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;" + sid + ")", nil},
		{"locked, full SIDs, owner and SACL", "O:BAG:SYD:PAI(A;OICI;FA;;;S-1-5-18)(A;OICI;FA;;;S-1-5-32-544)(A;OICIID;0x1301bf;;;" + strings.ToLower(sid) + ")S:AI(AU;SA;FA;;;WD)", nil},
		{"deny entries are fine", "D:P(D;OICI;FA;;;WD)(A;OICI;FA;;;SY)", nil},
		{"inherited from ProgramData", "D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)(A;OICIIOID;GA;;;CO)",
			[]string{"Users (S-1-5-32-545) is granted 0x1200a9", "Users (S-1-5-32-545) is granted DCLCRPCR", "CREATOR OWNER (S-1-3-0) is granted GA"}},
		{"a named user", "D:P(A;OICI;FA;;;SY)(A;;FR;;;S-1-5-21-1-2-3-1104)", []string{"S-1-5-21-1-2-3-1104 is granted FR"}},
		{"everyone", "D:(A;;FA;;;WD)", []string{"Everyone (S-1-1-0) is granted FA"}},
		{"null DACL", "D:NO_ACCESS_CONTROL", []string{"a null DACL: everyone has full access"}},
		{"no DACL", "O:BA", []string{"no DACL: everyone has full access"}},
		{"broken entry", "D:P(A;OICI;FA)", []string{"unreadable entry (A;OICI;FA)"}},
	} {
		got := daclProblems(c.sddl, allowed)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: %q\n got %q\nwant %q", c.name, c.sddl, got, c.want)
		}
	}
}

func TestACLRows(t *testing.T) {
	sid := serviceSID("wbagent")
	acls := map[string]string{
		`C:\ProgramData\wbagent`:      dataDirSDDL(sid),
		`C:\ProgramData\wbagent\keys`: "D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1301bf;;;" + sid + ")",
		`D:\shared`:                   "D:AI(A;OICIID;FA;;;SY)(A;OICIID;0x1200a9;;;BU)",
	}
	read := func(d string) (string, error) {
		if d == `C:\denied` {
			return "", errors.New("read the ACL of C:\\denied: Access is denied.")
		}
		if s, ok := acls[d]; ok {
			return s, nil
		}
		return "", fmt.Errorf("read the ACL of %s: %w", d, fs.ErrNotExist)
	}
	rows := aclRows([]string{`C:\ProgramData\wbagent`, `C:\ProgramData\wbagent\keys`, `C:\ProgramData\WBAGENT\keys`, `c:/programdata/wbagent/keys`, `D:\shared`,
		`C:\ProgramData\wbagent\state`, `C:\denied`, ""}, read)
	got := map[string]checkRow{}
	for _, r := range rows {
		got[strings.TrimPrefix(r.Name, "access ")] = r
	}
	if len(rows) != 5 {
		t.Errorf("rows %v: want one per distinct folder", rows)
	}
	if !got[`C:\ProgramData\wbagent`].OK || !got[`C:\ProgramData\wbagent\keys`].OK || !got[`C:\ProgramData\wbagent\state`].OK {
		t.Errorf("locked or missing folders must pass: %+v", rows)
	}
	if r := got[`D:\shared`]; r.OK || !strings.Contains(r.Detail, "Users") || !strings.Contains(r.Fix, "icacls \"D:\\shared\" /inheritance:r") ||
		!strings.Contains(r.Fix, "*"+sid+":(OI)(CI)M") {
		t.Errorf("open folder: %+v", r)
	}
	if r := got[`C:\denied`]; r.OK || !strings.Contains(r.Fix, "administrator") {
		t.Errorf("unreadable ACL: %+v", r)
	}
}

func TestQuoteWinArg(t *testing.T) {
	for in, want := range map[string]string{
		`run`: `run`, `C:\Program Files\wbagent\wbagent.exe`: `"C:\Program Files\wbagent\wbagent.exe"`,
		`C:\dir with space\`: `"C:\dir with space\\"`, `a"b`: `"a\"b"`, ``: `""`,
	} {
		if got := quoteWinArg(in); got != want {
			t.Errorf("quoteWinArg(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestWinInstallLocksOtherFolders: key and state folders the config names
// outside its own folder get the same ACL; those inside inherit it.
func TestWinInstallLocksOtherFolders(t *testing.T) {
	s, err := winServiceSpecFor(`C:\Program Files\wbagent\wbagent.exe`, `C:\ProgramData\wbagent\wbagent.yaml`, "",
		`C:\ProgramData\wbagent\state`, `c:/programdata/WBAGENT/keys`, `D:\wbagent-keys`, `d:\WBAGENT-KEYS`, `E:\state`, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.OtherDirs, "|"); got != `D:\wbagent-keys|E:\state` {
		t.Fatalf("other folders %q", got)
	}
	m := newFakeSCM()
	if err := winInstall(m, &bytes.Buffer{}, s); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{`C:\ProgramData\wbagent`, `D:\wbagent-keys`, `E:\state`} {
		if m.acl[d] != s.DataDirSDDL {
			t.Errorf("%s: ACL %q", d, m.acl[d])
		}
	}
	if len(m.acl) != 3 {
		t.Errorf("ACLs set on %v", m.acl)
	}
}

// TestServiceCommandFlags: only install takes flags (issue 17); the others
// act on the service by name and refuse a --config they would ignore.
func TestServiceCommandFlags(t *testing.T) {
	for _, name := range []string{"start", "stop", "restart", "status", "uninstall"} {
		_, errOut, code := runCLI(t, "", nil, name, "--config", "x.yaml")
		if code != exitUsage || !strings.Contains(errOut, "flag provided but not defined: -config") {
			t.Errorf("%s --config: code %d, %q", name, code, errOut)
		}
		_, errOut, code = runCLI(t, "", nil, name, "-h")
		if code != exitOK || !strings.Contains(errOut, "usage: wbagent "+name+"\n") {
			t.Errorf("%s -h: code %d, %q", name, code, errOut)
		}
	}
	_, errOut, code := runCLI(t, "", nil, "install", "-h")
	if code != exitOK || !strings.Contains(errOut, "-config") {
		t.Errorf("install -h: code %d, %q", code, errOut)
	}
}

// TestWinPurge: --purge deletes the whole data folder, nested state
// included, says so, is content when it is already gone, and refuses any
// folder that is not the agent's own.
func TestWinPurge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wbagent")
	for _, f := range []string{"wbagent.yaml", "keys/agent-hpke.key", "state/dedup/0001", "logs/audit.jsonl"} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := winPurge(&out, dir); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is still there after purge: %v", dir, err)
	}
	if !strings.Contains(out.String(), "removed "+dir) {
		t.Errorf("purge output: %q", out.String())
	}
	out.Reset()
	if err := winPurge(&out, dir); err != nil || !strings.Contains(out.String(), "nothing to purge") {
		t.Errorf("second purge: %v, %q", err, out.String())
	}
	other := t.TempDir()
	keep := filepath.Join(other, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{other, "wbagent", ""} {
		if err := winPurge(&out, bad); err == nil || !strings.Contains(err.Error(), "nothing deleted") {
			t.Errorf("purge of %q: %v, want a refusal", bad, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused purge deleted %s: %v", keep, err)
	}
}
