//go:build linux

package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// demote turns the shipped guide's headings into subsections of the
// README's "Install" section.
func demote(guide string) string {
	lines := strings.Split(guide, "\n")
	fence := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(l, "#") {
			lines[i] = "#" + l
		}
	}
	return strings.Join(lines, "\n")
}

// TestReadmeCarriesTheInstallGuide keeps the README's install guide and
// the one the packages ship (installer/README-install.md) the same text.
func TestReadmeCarriesTheInstallGuide(t *testing.T) {
	root := repoRoot(t)
	guide, err := os.ReadFile(filepath.Join(root, "installer", "README-install.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's own "Install" heading stands for the guide's title.
	_, body, _ := strings.Cut(string(guide), "\n")
	if !strings.Contains(string(readme), strings.TrimSpace(demote(body))) {
		t.Fatal("README.md does not carry installer/README-install.md: paste it (headings one level down) under the README's install section")
	}
}
