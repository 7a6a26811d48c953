//go:build linux

package packaging

import (
	"strings"
	"testing"
)

// TestRPMContents checks the .rpm's files, modes and owners (rpm -qlvp),
// config flags, dependencies and scriptlets.
func TestRPMContents(t *testing.T) {
	p := packages(t)
	requireTools(t, "rpm")

	// rpm -qlvp: "drwxr-x---    2 wbagent  wbagent   0 Nov 25 21:23 /var/lib/wbagent"
	got := map[string]string{}
	for _, line := range strings.Split(run(t, "", nil, "rpm", "-qlvp", p.rpm), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		got[f[len(f)-1]] = f[0] + " " + f[2] + ":" + f[3]
	}
	checkListing(t, "rpm", got, forPackager(layout(t), "rpm"), func(e entry) string {
		return e.mode.String() + " " + e.owner
	})

	// %config(noreplace): flags "c" (config) and "n" (noreplace).
	flags := map[string]string{}
	for _, line := range strings.Split(run(t, "", nil, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", p.rpm), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			flags[f[1]] = f[0]
		} else if len(f) == 1 {
			flags[f[0]] = ""
		}
	}
	for _, path := range []string{"/etc/wbagent/wbagent.yaml", "/etc/sysconfig/wbagent"} {
		if fl := flags[path]; !strings.Contains(fl, "c") || !strings.Contains(fl, "n") {
			t.Errorf("%s: file flags %q, want config noreplace (c, n)", path, fl)
		}
	}

	if q := run(t, "", nil, "rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}.%{ARCH}", p.rpm); q != testVersion+"-1.x86_64" {
		t.Errorf("rpm version = %q", q)
	}
	if req := run(t, "", nil, "rpm", "-qpR", p.rpm); !strings.Contains(req, "/usr/sbin/useradd") {
		t.Errorf("rpm does not require /usr/sbin/useradd:\n%s", req)
	}
	scripts := run(t, "", nil, "rpm", "-qp", "--scripts", p.rpm)
	for _, want := range []string{
		"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"useradd --system", "userdel wbagent", "rm -rf /var/lib/wbagent /var/log/wbagent",
	} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scriptlets lack %q", want)
		}
	}
}
