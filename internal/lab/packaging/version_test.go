//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionScheme runs installer/version.sh in a scratch git repository
// through the life of a release: no tag, a tag, commits after it, local
// changes, a pre-release tag, and forced versions.
func TestVersionScheme(t *testing.T) {
	requireTools(t, "git", "bash")
	script := filepath.Join(repoRoot(t), "installer", "version.sh")
	repo := t.TempDir()
	gitEnv := []string{
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
	}
	git := func(args ...string) string {
		return strings.TrimSpace(run(t, repo, gitEnv, "git", args...))
	}
	commit := func() string {
		f := filepath.Join(repo, "f")
		old, _ := os.ReadFile(f)
		if err := os.WriteFile(f, append(old, 'x'), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "f")
		git("commit", "-q", "-m", "change")
		return git("rev-parse", "--short=7", "HEAD")
	}
	version := func(env ...string) string {
		return strings.TrimSpace(run(t, repo, append(gitEnv, env...), script))
	}

	git("init", "-q")
	commit()
	commit()
	sha := commit()
	if got, want := version(), "0.0.3+g"+sha+" 0.0.3"; got != want {
		t.Errorf("untagged: got %q, want %q", got, want)
	}

	git("tag", "v1.4.0")
	if got, want := version(), "1.4.0 1.4.0"; got != want {
		t.Errorf("on a tag: got %q, want %q", got, want)
	}

	commit()
	sha = commit()
	if got, want := version(), "1.4.0+2.g"+sha+" 1.4.0"; got != want {
		t.Errorf("after a tag: got %q, want %q", got, want)
	}

	if err := os.WriteFile(filepath.Join(repo, "f"), []byte("local"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := version(), "1.4.0+2.g"+sha+".dirty 1.4.0"; got != want {
		t.Errorf("with local changes: got %q, want %q", got, want)
	}
	git("checkout", "-q", "--", "f")

	git("tag", "v1.5.0-rc1")
	if got, want := version(), "1.5.0~rc1 1.5.0"; got != want {
		t.Errorf("on a pre-release tag: got %q, want %q", got, want)
	}

	if got, want := version("PKG_VERSION=3.1.4+custom"), "3.1.4+custom 3.1.4"; got != want {
		t.Errorf("forced: got %q, want %q", got, want)
	}
	for _, bad := range []string{"3.1", "v3.1.4", "3.1.4-1", "256.0.0", "1.2.65536"} {
		cmd := exec.Command(script)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), append(gitEnv, "PKG_VERSION="+bad)...)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("PKG_VERSION=%s accepted: %s", bad, out)
		}
	}

	// The scheme must sort the way releases happen, for dpkg and for rpm.
	order := []string{"0.0.3+gabcdef0", "1.4.0", "1.4.0+2.gabcdef0", "1.4.0+10.gabcdef0", "1.5.0~rc1", "1.5.0~rc1+1.gabcdef0", "1.5.0"}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if _, err := exec.LookPath("dpkg"); err == nil {
			if out, err := exec.Command("dpkg", "--compare-versions", a, "lt", b).CombinedOutput(); err != nil {
				t.Errorf("dpkg does not sort %s before %s: %v %s", a, b, err, out)
			}
		}
		if _, err := exec.LookPath("rpm"); err == nil {
			out, err := exec.Command("rpm", "--eval", `%{lua: print(rpm.vercmp("`+a+`", "`+b+`"))}`).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "-1" {
				t.Errorf("rpm does not sort %s before %s: %v %s", a, b, err, out)
			}
		}
	}
}
