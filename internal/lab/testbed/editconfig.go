package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Quote writes s as the config file writes a value: a double-quoted YAML
// (and JSON) string, so a test can find the line that holds a value.
func Quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// EditConfig rewrites the agent's config file through edit, for a test
// that needs a setting WriteAgentConfig does not make.
func (f *AgentFiles) EditConfig(edit func(config string) (string, error)) error {
	b, err := os.ReadFile(f.Config)
	if err != nil {
		return err
	}
	out, err := edit(string(b))
	if err != nil {
		return fmt.Errorf("edit config %s: %w", f.Config, err)
	}
	return os.WriteFile(f.Config, []byte(out), 0o600)
}

// ReplaceInConfig replaces the first old in the agent's config file with
// new; a config without old is an error, so that a change in the file's
// layout fails the test instead of leaving the setting as it was.
func (f *AgentFiles) ReplaceInConfig(old, new string) error {
	return f.EditConfig(func(c string) (string, error) {
		if !strings.Contains(c, old) {
			return "", fmt.Errorf("it has no %q", old)
		}
		return strings.Replace(c, old, new, 1), nil
	})
}
