package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// Linux has fixed it at 100 on every architecture Go supports.
const clockTicks = 100

// ProcSample is what /proc says about one process at one moment.
type ProcSample struct {
	// CPU is user plus system time of all its threads so far (10 ms
	// resolution).
	CPU time.Duration
	// RSS is the resident set now; PeakRSS (VmHWM) the largest it has been.
	RSS, PeakRSS int64
	// RSSAnon and RSSFile split RSS into private memory (heap, stacks)
	// and mapped files (the executable, the ledger's bbolt file).
	RSSAnon, RSSFile int64
	// Threads is the number of threads.
	Threads int
}

// ReadProc samples process pid from /proc/PID/stat and /proc/PID/status.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read cpu time of process %d: %w", pid, err)
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("read cpu time of process %d: /proc/%d/stat has no command name", pid, pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("read cpu time of process %d: /proc/%d/stat is too short", pid, pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("read cpu time of process %d: %w", pid, err)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			s.RSS = parseKB(v)
		case "VmHWM":
			s.PeakRSS = parseKB(v)
		case "RssAnon":
			s.RSSAnon = parseKB(v)
		case "RssFile":
			s.RSSFile = parseKB(v)
		case "Threads":
			s.Threads, _ = strconv.Atoi(v)
		}
	}
	return s, nil
}

// parseKB reads "1234 kB" as bytes.
func parseKB(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return n << 10
}

// FindProcess returns the id of the newest running process whose command
// line contains every one of args (e.g. "run" and a config path), so that
// a process someone else started can be measured.
func FindProcess(args ...string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	best := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid <= best {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if containsAll(argv, args) {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("find process: none runs with %q", args)
	}
	return best, nil
}

func containsAll(argv, want []string) bool {
	for _, w := range want {
		found := false
		for _, a := range argv {
			if a == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
