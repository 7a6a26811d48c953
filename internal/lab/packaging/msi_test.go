//go:build linux

package packaging

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMSI inspects the MSI with msiinfo and msiextract: the service, its
// recovery and configuration, the files and where they go, the Event Log
// source, the data folder's ACL, the upgrade rules, and what stays on
// uninstall unless PURGEDATA=1.
func TestMSI(t *testing.T) {
	p := packages(t)
	requireTools(t, "msiinfo", "msiextract", "dpkg-deb")
	table := func(name string) []map[string]string { return msiTable(t, p.msi, name) }
	find := func(rows []map[string]string, key, value string) map[string]string {
		for _, r := range rows {
			if r[key] == value {
				return r
			}
		}
		t.Errorf("no row with %s=%q in %v", key, value, rows)
		return map[string]string{}
	}

	props := table("Property")
	for name, want := range map[string]string{"ProductName": "wbagent", "ProductVersion": testMSIVersion, "UpgradeCode": "{55930518-87e2-4eca-85a3-4770eaeee773}"} {
		if got := find(props, "Property", name)["Value"]; !strings.EqualFold(got, want) {
			t.Errorf("property %s = %q, want %q", name, got, want)
		}
	}
	if got := find(props, "Property", "SecureCustomProperties")["Value"]; !strings.Contains(got, "SERVICEACCOUNT") {
		t.Errorf("SERVICEACCOUNT is not a secure property: %q", got)
	}

	// Files and their folders: Program Files\wbagent, %ProgramData%\wbagent, ad\.
	dirs := map[string]map[string]string{}
	for _, r := range table("Directory") {
		dirs[r["Directory"]] = r
	}
	pathOf := func(dir string) string {
		var parts []string
		for d := dir; d != "" && d != "TARGETDIR"; d = dirs[d]["Directory_Parent"] {
			name := dirs[d]["DefaultDir"]
			if d == "ProgramFiles64Folder" || d == "CommonAppDataFolder" {
				name = "[" + d + "]"
			}
			if name != "." {
				parts = append([]string{name}, parts...)
			}
		}
		return strings.Join(parts, `\`)
	}
	components := map[string]map[string]string{}
	for _, r := range table("Component") {
		components[r["Component"]] = r
	}
	files := map[string]string{} // installed path -> component
	for _, r := range table("File") {
		c := r["Component_"]
		files[pathOf(components[c]["Directory_"])+`\`+r["FileName"]] = c
	}
	wantFiles := []string{`[ProgramFiles64Folder]\wbagent\wbagent.exe`, `[ProgramFiles64Folder]\wbagent\README-install.md`, `[CommonAppDataFolder]\wbagent\wbagent.yaml`}
	for _, f := range adScripts(t) {
		wantFiles = append(wantFiles, `[ProgramFiles64Folder]\wbagent\ad\`+strings.ReplaceAll(f.rel, "/", `\`))
	}
	for _, f := range wantFiles {
		if _, ok := files[f]; !ok {
			t.Errorf("MSI does not install %s (it installs %v)", f, files)
		}
	}

	// Config and key folders survive uninstall; the config is never overwritten.
	const win64, permanent, neverOverwrite = 256, 16, 128
	for comp, attrs := range map[string]int{"Config": win64 | permanent | neverOverwrite, "KeysDir": win64 | permanent, "SendersDir": win64 | permanent, "AgentExe": win64} {
		if got := components[comp]["Attributes"]; got != strconv.Itoa(attrs) {
			t.Errorf("component %s attributes %s, want %d", comp, got, attrs)
		}
	}
	creates := map[string]bool{}
	for _, r := range table("CreateFolder") {
		creates[pathOf(r["Directory_"])] = true
	}
	for _, d := range []string{`[CommonAppDataFolder]\wbagent`, `[CommonAppDataFolder]\wbagent\keys`, `[CommonAppDataFolder]\wbagent\senders`} {
		if !creates[d] {
			t.Errorf("MSI does not create %s", d)
		}
	}

	// The service.
	svc := find(table("ServiceInstall"), "Name", "wbagent")
	for col, want := range map[string]string{
		"ServiceType": "16", // own process
		"StartType":   "2",  // automatic
		"StartName":   "[SERVICEACCOUNT]",
		// The explicit service flag: the agent must not guess whether the
		// service manager started it (under Wine the guess said no).
		"Arguments":  `run --service --config "[DATADIR]wbagent.yaml"`,
		"Component_": "AgentExe",
	} {
		if svc[col] != want {
			t.Errorf("ServiceInstall %s = %q, want %q", col, svc[col], want)
		}
	}
	if got := pathOf("DATADIR"); got != `[CommonAppDataFolder]\wbagent` {
		t.Errorf("DATADIR is %s", got)
	}
	ctl := find(table("ServiceControl"), "Name", "wbagent")
	if ev, _ := strconv.Atoi(ctl["Event"]); ev&0x2 == 0 || ev&0x20 == 0 || ev&0x80 == 0 || ev&0x1 != 0 {
		t.Errorf("ServiceControl events %s: want stop on install and uninstall, delete on uninstall, no start at install", ctl["Event"])
	}
	rec := find(table("MsiServiceConfigFailureActions"), "Name", "wbagent")
	for col, want := range map[string]string{"ResetPeriod": "86400", "Actions": "1[~]1[~]1", "DelayActions": "20000[~]20000[~]20000", "Component_": "AgentExe"} {
		if rec[col] != want {
			t.Errorf("failure actions %s = %q, want %q", col, rec[col], want)
		}
	}
	configTypes := map[string]string{}
	for _, r := range table("MsiServiceConfig") {
		configTypes[r["ConfigType"]] = r["Argument"]
	}
	for ct, arg := range map[string]string{"3": "1", "4": "1", "5": "1"} { // delayed start, failure actions on error exit, unrestricted service SID
		if configTypes[ct] != arg {
			t.Errorf("MsiServiceConfig type %s = %q, want %q", ct, configTypes[ct], arg)
		}
	}
	seq := map[string]int{}
	for _, r := range table("InstallExecuteSequence") {
		seq[r["Action"]], _ = strconv.Atoi(r["Sequence"])
	}
	if !(seq["InstallServices"] < seq["MsiConfigureServices"] && seq["MsiConfigureServices"] < seq["StartServices"]) {
		t.Errorf("MsiConfigureServices (%d) must run between InstallServices (%d) and StartServices (%d)", seq["MsiConfigureServices"], seq["InstallServices"], seq["StartServices"])
	}

	// %ProgramData%\wbagent: SYSTEM, Administrators and the service SID only.
	lock := find(table("MsiLockPermissionsEx"), "LockObject", "DATADIR")
	sid := serviceSID("wbagent")
	if want := "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;" + sid + ")"; lock["SDDL"] != want || lock["Table"] != "CreateFolder" {
		t.Errorf("data folder ACL %q on %s, want %q on CreateFolder", lock["SDDL"], lock["Table"], want)
	}

	// The Event Log source.
	const eventKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\wbagent`
	reg := map[string]string{}
	for _, r := range table("Registry") {
		if r["Root"] == "2" && strings.TrimSuffix(r["Key"], `\`) == eventKey {
			reg[r["Name"]] = r["Value"]
		}
	}
	// "#%" makes the value REG_EXPAND_SZ, so %SystemRoot% expands when the
	// Event Viewer loads the message file (wixl alone writes REG_SZ).
	if reg["EventMessageFile"] != `#%%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll` || reg["TypesSupported"] != "#7" {
		t.Errorf("Event Log source registration under HKLM\\%s: %v", eventKey, reg)
	}

	// Upgrades: every older or equal version is replaced; a newer one refuses.
	var upgradeAll, downgrade bool
	for _, r := range table("Upgrade") {
		attrs, _ := strconv.Atoi(r["Attributes"])
		switch r["ActionProperty"] {
		case "WIX_UPGRADE_DETECTED":
			upgradeAll = r["VersionMin"] == "0.0.0" && r["VersionMax"] == "" && attrs&0x100 != 0 && attrs&0x2 == 0
		case "WIX_DOWNGRADE_DETECTED":
			downgrade = r["VersionMin"] == testMSIVersion && attrs&0x2 != 0
		}
	}
	if !upgradeAll || !downgrade {
		t.Errorf("upgrade rows: same-or-older upgrade %v, newer refused %v: %v", upgradeAll, downgrade, table("Upgrade"))
	}
	if seq["RemoveExistingProducts"] == 0 || seq["LaunchConditions"] > seq["RemoveExistingProducts"] {
		t.Errorf("RemoveExistingProducts %d must be scheduled after LaunchConditions %d", seq["RemoveExistingProducts"], seq["LaunchConditions"])
	}

	// PURGEDATA=1 removes %ProgramData%\wbagent on a real uninstall only:
	// a command (34 = exe run in a folder), deferred to the script's last
	// step so a failed uninstall rolls back before it, as SYSTEM, never on
	// a repair or a major upgrade. Not a commit or rollback action: those
	// never run where policy disables rollback.
	purge := find(table("CustomAction"), "Action", "PurgeDataDir")
	const caBase, caContinue, caInScript, caCommitOrRollback, caNoImpersonate = 0x3f, 0x40, 0x400, 0x300, 0x800
	if ty, _ := strconv.Atoi(purge["Type"]); ty&caBase != 34 || ty&caInScript == 0 || ty&caCommitOrRollback != 0 || ty&caNoImpersonate == 0 || ty&caContinue == 0 {
		t.Errorf("PurgeDataDir type %s: want 34 (command in a folder), deferred, not impersonated, exit code ignored", purge["Type"])
	}
	if want := `"[System64Folder]cmd.exe" /c if exist "[DATADIR]" rd /s /q "[DATADIR]"`; purge["Target"] != want || purge["Source"] != "TARGETDIR" {
		t.Errorf("PurgeDataDir runs %q in %s, want %q in TARGETDIR", purge["Target"], purge["Source"], want)
	}
	var purgeCond string
	for _, r := range table("InstallExecuteSequence") {
		if r["Action"] == "PurgeDataDir" {
			purgeCond = r["Condition"]
		}
	}
	if purgeCond != `PURGEDATA="1" AND REMOVE~="ALL" AND NOT UPGRADINGPRODUCTCODE` {
		t.Errorf("PurgeDataDir condition %q: want PURGEDATA=\"1\", a real uninstall, no upgrade", purgeCond)
	}
	for action, n := range seq {
		if action != "PurgeDataDir" && n > seq["PurgeDataDir"] && n < seq["InstallFinalize"] {
			t.Errorf("%s (%d) runs after PurgeDataDir (%d): a failure there would roll back an uninstall whose data is gone", action, n, seq["PurgeDataDir"])
		}
	}
	if seq["InstallInitialize"] >= seq["PurgeDataDir"] || seq["PurgeDataDir"] >= seq["InstallFinalize"] {
		t.Errorf("PurgeDataDir (%d) must be scheduled between InstallInitialize (%d) and InstallFinalize (%d)", seq["PurgeDataDir"], seq["InstallInitialize"], seq["InstallFinalize"])
	}
	if got := find(props, "Property", "SecureCustomProperties")["Value"]; !strings.Contains(got+";", ";PURGEDATA;") {
		t.Errorf("PURGEDATA is not a secure property: %q", got)
	}
	for _, r := range props {
		if r["Property"] == "PURGEDATA" {
			t.Errorf("PURGEDATA has a default value %q: the default must be to keep the data", r["Value"])
		}
	}

	checkMSIPayload(t, p)
}

// checkMSIPayload extracts the MSI and compares its files with the sources;
// the Windows configuration must name no Linux path and pass the agent's
// own offline check.
func checkMSIPayload(t *testing.T, p built) {
	t.Helper()
	x := t.TempDir()
	run(t, "", nil, "msiextract", "-C", x, p.msi)
	exe, err := os.ReadFile(filepath.Join(x, "wbagent", "wbagent.exe"))
	if err != nil || !bytes.HasPrefix(exe, []byte("MZ")) {
		t.Errorf("wbagent.exe is missing or not a Windows executable: %v", err)
	}
	for _, f := range adScripts(t) {
		got, err := os.ReadFile(filepath.Join(x, "wbagent", "ad", filepath.FromSlash(f.rel)))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("ad\\%s differs from installer/ad/%s: %v", f.rel, f.rel, err)
		}
	}
	cfg := filepath.Join(x, "wbagent", "wbagent.yaml")
	text := readFile(t, cfg)
	for _, linux := range []string{"/etc/wbagent", "/var/lib/wbagent", "/var/log/wbagent"} {
		if strings.Contains(text, linux) {
			t.Errorf("the Windows wbagent.yaml names %s", linux)
		}
	}
	for _, want := range []string{"stateDir: state", "keys/agent-hpke.key", "logs/audit.jsonl"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Windows wbagent.yaml lacks %q", want)
		}
	}
	// The Linux build of the same agent validates the Windows file: its
	// paths are relative to the config folder on both systems.
	lx := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", p.deb, lx)
	if out, err := runErr("", nil, filepath.Join(lx, "usr/bin/wbagent"), "check", "--offline", "--config", cfg); err != nil {
		t.Errorf("wbagent check --offline on the Windows config: %v\n%s", err, out)
	}
}

// msiTable exports one table: the first line names the columns, two more
// header lines follow, then one tab-separated row per line (CRLF endings).
func msiTable(t *testing.T, msi, name string) []map[string]string {
	t.Helper()
	out := strings.ReplaceAll(run(t, "", nil, "msiinfo", "export", msi, name), "\r", "")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("msiinfo export %s: %q", name, out)
	}
	cols := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		vals := strings.Split(l, "\t")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(vals) {
				row[c] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// serviceSID is the per-service SID Windows derives from a service name:
// S-1-5-80 followed by the SHA-1 of the upper-case name in UTF-16LE, read as
// five little-endian 32-bit numbers.
func serviceSID(name string) string {
	var utf16 []byte
	for _, r := range strings.ToUpper(name) {
		utf16 = binary.LittleEndian.AppendUint16(utf16, uint16(r))
	}
	sum := sha1.Sum(utf16)
	sid := "S-1-5-80"
	for i := 0; i < 5; i++ {
		sid += fmt.Sprintf("-%d", binary.LittleEndian.Uint32(sum[4*i:]))
	}
	return sid
}

// TestServiceSID pins the derivation with a SID Windows documents.
func TestServiceSID(t *testing.T) {
	if got, want := serviceSID("TrustedInstaller"), "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"; got != want {
		t.Errorf("serviceSID(TrustedInstaller) = %s, want %s", got, want)
	}
}
