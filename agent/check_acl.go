package main

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"wbagent/internal/config"
)

// aclChecks verifies, on Windows, that only SYSTEM, Administrators and the
// service can reach the folders of the config, the keys, the trusted
// senders' keys and the state: whoever can write there can replace a
// sender's key or read the agent's. Elsewhere file modes are the
// operating system's own check (readDACL is nil).
func aclChecks(cfg *config.Config) []checkRow {
	if readDACL == nil {
		return nil
	}
	dirs := []string{filepath.Dir(cfg.Path), cfg.Agent.StateDir, filepath.Dir(cfg.Agent.SigningKey)}
	for _, k := range cfg.Agent.DecryptionKeys {
		dirs = append(dirs, filepath.Dir(k))
	}
	for _, s := range cfg.Agent.TrustedSenders {
		dirs = append(dirs, filepath.Dir(s.PublicKey))
	}
	return aclRows(dirs, readDACL)
}

// aclRows checks the DACL of each distinct folder as read returns it (SDDL).
func aclRows(dirs []string, read func(string) (string, error)) []checkRow {
	seen := map[string]bool{}
	var uniq []string
	for _, d := range dirs {
		// Windows paths compare without case, either slash.
		key := strings.ToLower(strings.ReplaceAll(d, "/", `\`))
		if d == "" || d == "." || seen[key] {
			continue
		}
		seen[key] = true
		uniq = append(uniq, d)
	}
	sort.Strings(uniq)
	sid := serviceSID(serviceName)
	allowed := []string{sidSystem, sidAdministrators, sid}
	var rows []checkRow
	for _, d := range uniq {
		row := checkRow{Name: "access " + d}
		sddl, err := read(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			row.OK, row.Detail = true, "does not exist yet (created at start, inheriting its parent's ACL)"
		case err != nil:
			row.Detail, row.Fix = err.Error(), "run `wbagent check` as an administrator"
		default:
			if p := daclProblems(sddl, allowed); len(p) > 0 {
				row.Detail = strings.Join(p, "; ")
				row.Fix = "limit it to SYSTEM, Administrators and the service: `wbagent install` does it for the config's folder, or run " +
					`icacls "` + d + `" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F *` + sid + ":(OI)(CI)M"
			} else {
				row.OK, row.Detail = true, `SYSTEM, Administrators and NT SERVICE\`+serviceName+" only"
			}
		}
		rows = append(rows, row)
	}
	return rows
}
