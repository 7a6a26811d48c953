//go:build unix

package fileperm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrivateMode(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o644, false}, {0o660, false}} {
		p := filepath.Join(dir, c.mode.String())
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPrivatePath("secret file", p)
		if c.ok {
			if err != nil {
				t.Errorf("mode %v: %v", c.mode, err)
			}
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Fix != "chmod 600 "+p || !strings.Contains(err.Error(), "secret file "+p+" is accessible by group or others") {
			t.Errorf("mode %v: %v", c.mode, err)
		}
	}
}

// A file another user owns is refused with the chown that gives it to the
// user the agent runs as (root runs the tests; the file goes to nobody).
func TestCheckPrivateOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	p := filepath.Join(t.TempDir(), "bind.secret")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, -1); err != nil {
		t.Fatal(err)
	}
	err := CheckPrivatePath("secret file", p)
	var fe *Error
	if !errors.As(err, &fe) || fe.Fix != "chown root "+p || !strings.Contains(err.Error(), "not by root, the user the agent runs as") {
		t.Fatalf("got %v", err)
	}
	if err := os.Chown(p, 0, -1); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivatePath("secret file", p); err != nil {
		t.Fatalf("own file refused: %v", err)
	}
}

// ReadSmall refuses what is not a small regular file before reading it,
// and names the file's role in every error.
func TestReadSmall(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, st, err := ReadSmall("key file", small, 10)
	if err != nil || string(b) != "0123456789" || st.Size() != 10 {
		t.Fatalf("ReadSmall = %q, %v, %v", b, st, err)
	}
	for _, c := range []struct {
		path  string
		limit int64
		want  string
	}{
		{small, 9, "read key file " + small + ": not a regular file of at most 9 bytes"},
		{dir, 1 << 10, "read key file " + dir + ": not a regular file of at most 1024 bytes"},
		{filepath.Join(dir, "missing"), 10, "read key file: open " + filepath.Join(dir, "missing")},
	} {
		if _, _, err := ReadSmall("key file", c.path, c.limit); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ReadSmall(%s, %d) = %v, want %q", c.path, c.limit, err, c.want)
		}
	}
}
