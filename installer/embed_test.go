package installer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kardianos/service"
)

// TestUnitRequiredHardening pins the directives the packaging contract
// promises; a removed line fails here before it reaches a package.
func TestUnitRequiredHardening(t *testing.T) {
	want := []string{
		"User=wbagent",
		"Group=wbagent",
		"ExecStart=/usr/bin/wbagent run --config /etc/wbagent/wbagent.yaml",
		"ProtectSystem=strict",
		"ReadWritePaths=/var/lib/wbagent /var/log/wbagent",
		"NoNewPrivileges=yes",
		"PrivateTmp=yes",
		"CapabilityBoundingSet=",
		"AmbientCapabilities=",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service",
		"Restart=on-failure",
		"ProtectHome=yes",
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectControlGroups=yes",
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(SystemdUnit, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("unit lacks the line %q", w)
		}
	}
	if strings.Contains(SystemdUnit, "{{") {
		t.Error("unit contains \"{{\": kardianos would read it as a template action")
	}
	// Any other writable path would widen ProtectSystem=strict.
	for _, l := range strings.Split(SystemdUnit, "\n") {
		if strings.HasPrefix(l, "ReadWritePaths=") && l != "ReadWritePaths=/var/lib/wbagent /var/log/wbagent" {
			t.Errorf("extra writable path: %q", l)
		}
	}
}

// TestKardianosRendersPackagedUnit installs through kardianos/service itself
// (as a user unit under a temporary HOME, with no systemctl on PATH, so
// nothing on the machine changes) and checks that the file it writes is the
// packaged unit, apart from kardianos's quoting of ExecStart arguments.
func TestKardianosRendersPackagedUnit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are Linux only")
	}
	var systemd service.System
	for _, s := range service.AvailableSystems() {
		if s.String() == "linux-systemd" {
			systemd = s
		}
	}
	if systemd == nil {
		t.Fatal("kardianos/service offers no linux-systemd system")
	}

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PATH", t.TempDir()) // no systemctl: Install writes the file, then fails to enable
	svc, err := systemd.New(nopProgram{}, &service.Config{
		Name:        "wbagent",
		DisplayName: "wbagent",
		Description: "ignored: the unit has its own",
		Executable:  "/usr/bin/wbagent",
		Arguments:   []string{"run", "--config", "/etc/wbagent/wbagent.yaml"},
		EnvVars:     map[string]string{"WBAGENT_EXAMPLE": "1"},
		Option:      service.KeyValue{"SystemdScript": SystemdScript(), "UserService": true},
	})
	if err != nil {
		t.Fatalf("kardianos systemd service: %v", err)
	}
	_ = svc.Install() // fails at "systemctl enable"; the unit is written before that
	got, err := os.ReadFile(filepath.Join(home, ".config/systemd/user/wbagent.service"))
	if err != nil {
		t.Fatalf("kardianos wrote no unit: %v", err)
	}

	want := strings.Replace(SystemdUnit,
		"ExecStart=/usr/bin/wbagent run --config /etc/wbagent/wbagent.yaml\n",
		"ExecStart=/usr/bin/wbagent \"run\" \"--config\" \"/etc/wbagent/wbagent.yaml\"\nEnvironment=WBAGENT_EXAMPLE=1\n", 1)
	if string(got) != want {
		t.Errorf("kardianos rendered a different unit:\n--- got\n%s\n--- want\n%s", got, want)
	}
}

type nopProgram struct{}

func (nopProgram) Start(service.Service) error { return nil }
func (nopProgram) Stop(service.Service) error  { return nil }
