//go:build !linux

package sambadc

import (
	"errors"
	"os"
	"syscall"
)

// supported explains why Start fails here: Samba AD DC, loopback aliases
// and flock are Linux matters. The package still compiles so that tests
// importing it build (and skip or fail clearly) on every platform.
var supported = errors.New("sambadc runs Samba AD DCs on Linux only")

func lock(*os.File, bool) error { return supported }

func ownGroup() *syscall.SysProcAttr { return nil }

func signalGroup(int, bool) {}

func alive(int) bool { return true }
