package installer

import (
	_ "embed"
	"strings"
)

// SystemdUnit is the systemd unit exactly as the packages install it at
// /usr/lib/systemd/system/wbagent.service.
//
//go:embed linux/wbagent.service
var SystemdUnit string

// SystemUser is the dedicated account (user and group) the service runs as.
// The packages create it with `useradd --system` (home /var/lib/wbagent, no
// login shell); the kardianos path must create it too, together with
// /etc/wbagent/keys (owner SystemUser, mode 0700).
const SystemUser = "wbagent"

// execStartTemplate is kardianos's own ExecStart form: the path escaped for
// systemd, each argument quoted.
const execStartTemplate = "ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}"

// envVarsTemplate renders Config.EnvVars as Environment= lines.
const envVarsTemplate = "{{range EnvVars}}{{.}}\n{{end}}"

// SystemdScript returns SystemdUnit as a kardianos/service SystemdScript
// template: the ExecStart line is rebuilt from {{Path}} and {{Arguments}},
// and {{EnvVars}} follow it. The unit contains no other "{{", so every other
// line is written verbatim.
func SystemdScript() string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(SystemdUnit, "\n") {
		if strings.HasPrefix(line, "ExecStart=") {
			b.WriteString(execStartTemplate + "\n")
			b.WriteString(envVarsTemplate)
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
