package fileperm

import (
	"fmt"
	"io/fs"
	"os"
)

// Error is a file that is not the agent's alone: what is wrong, and the
// one command that fixes it.
type Error struct {
	Path    string
	Problem string
	// Fix is the command to run, such as "chmod 600 /etc/wbagent/keys/agent-hpke.key".
	Fix string
}

func (e *Error) Error() string { return e.Problem + "; fix it with: " + e.Fix }

// CheckPrivate returns an error naming the file and the fix when path,
// whose FileInfo st comes from the file the caller opened (not from a
// second look at the path), may be read by anyone but the user the agent
// runs as. what names the file in the message ("private key file",
// "secret file").
func CheckPrivate(what, path string, st fs.FileInfo) error {
	if err := checkOwner(what, path, st); err != nil {
		return err
	}
	return checkMode(what, path, st.Mode())
}

// CheckPrivatePath is CheckPrivate for a file not opened yet.
func CheckPrivatePath(what, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return CheckPrivate(what, path, st)
}

// UnreadableFix is the fix for a file that exists but that the user the
// agent runs as cannot open: ownership and permissions, never a new file
// (a new key would break trust with every sender).
func UnreadableFix(path string, private bool) string {
	return unreadableFix(path, private)
}
