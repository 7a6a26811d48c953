//go:build unix

package fileperm

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// checkMode refuses any permission bit for group or others.
func checkMode(what, path string, mode fs.FileMode) error {
	if perm := mode.Perm(); perm&0o077 != 0 {
		return &Error{Path: path, Problem: fmt.Sprintf("%s %s is accessible by group or others (mode %04o)", what, path, perm),
			Fix: "chmod 600 " + path}
	}
	return nil
}

// checkOwner refuses a file owned by another user than the one this
// process runs as: its owner can read it whatever its mode, and give it
// to anyone.
func checkOwner(what, path string, st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	me := os.Geteuid()
	if int(sys.Uid) == me {
		return nil
	}
	return &Error{Path: path,
		Problem: fmt.Sprintf("%s %s is owned by %s, not by %s, the user the agent runs as", what, path, userName(int(sys.Uid)), userName(me)),
		Fix:     fmt.Sprintf("chown %s %s", userName(me), path)}
}

// userName is uid's login name, or the number when it has none.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username
	}
	return id
}

func unreadableFix(path string, private bool) string {
	me := userName(os.Geteuid())
	mode := "600"
	if !private {
		mode = "644"
	}
	return fmt.Sprintf("the file exists but %s cannot read it: give it to that account with: chown %s %s && chmod %s %s", me, me, path, mode, path)
}
