package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// rotatedLayout is the time stamp a rotated file's name ends in: the file
// is FILE.<UTC time of the rotation>, so names sort in chain order.
const rotatedLayout = "20060102T150405.000Z"

// RotatedFiles returns the rotated files of the audit file at path, oldest
// first: FILE.<time stamp>, as the writer names them. FILE itself, its
// .torn and .probe companions and anything else are left out.
func RotatedFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list rotated audit files: %w", err)
	}
	var out []string
	for _, e := range entries {
		stamp, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() || !isRotatedStamp(stamp) {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// isRotatedStamp reports whether s is a rotation time stamp, optionally
// followed by -N (two rotations within one millisecond).
func isRotatedStamp(s string) bool {
	if len(s) < len(rotatedLayout) {
		return false
	}
	if _, err := time.Parse(rotatedLayout, s[:len(rotatedLayout)]); err != nil {
		return false
	}
	rest := s[len(rotatedLayout):]
	if rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "-")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// rotateIfDue starts a new file when the next write of n bytes would take
// the file past MaxSize, or its first line is older than MaxAge. The chain
// goes on: the new file's first line links to the old file's last. A
// rotation that fails is logged and writing continues in the current file:
// a file larger than planned is better than a lost line.
func (w *Writer) rotateIfDue(n int64) {
	if w.size == 0 {
		return
	}
	bySize := w.opts.MaxSize > 0 && w.size+n > w.opts.MaxSize
	byAge := w.opts.MaxAge > 0 && !w.first.IsZero() && w.opts.Now().Sub(w.first) >= w.opts.MaxAge
	if !bySize && !byAge {
		return
	}
	if err := w.repair(); err != nil {
		w.log.Warn("audit file not rotated: cutting back a failed write failed; writing on in the current file", zap.String("path", w.path), zap.Error(err))
		return
	}
	name, err := w.rotate()
	if err != nil {
		w.log.Warn("audit file not rotated; writing on in the current file", zap.String("path", w.path), zap.Error(err))
		return
	}
	w.log.Info("audit file rotated; the hash chain continues in the new file", zap.String("path", w.path), zap.String("rotated_to", name),
		zap.Int64("bytes", w.size))
	w.size, w.first, w.dirty = 0, time.Time{}, false
}

// rotate closes the file, renames it to FILE.<time stamp> and opens a new
// FILE. Closing before the rename keeps it portable (Windows refuses to
// rename an open file). If the new file cannot be opened the old one is put
// back.
func (w *Writer) rotate() (string, error) {
	name, err := w.rotatedName()
	if err != nil {
		return "", err
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("sync before rotating: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", w.reopen(fmt.Errorf("close before rotating: %w", err))
	}
	if err := os.Rename(w.path, name); err != nil {
		return "", w.reopen(fmt.Errorf("rename to %s: %w", name, err))
	}
	f, err := w.opts.open(w.path)
	if err == nil {
		if err = syncDir(w.path); err != nil {
			f.Close()
		}
	}
	if err != nil {
		err = fmt.Errorf("open a new %s: %w", w.path, err)
		if rerr := os.Rename(name, w.path); rerr != nil {
			return "", errors.Join(err, w.reopen(fmt.Errorf("put %s back: %w", name, rerr)))
		}
		return "", w.reopen(err)
	}
	w.f = f
	return name, nil
}

// reopen opens the current file again after a rotation step failed, and
// returns cause. When even that fails every later write fails too (the
// chain stays intact: nothing is written) until the agent is restarted.
func (w *Writer) reopen(cause error) error {
	f, err := w.opts.open(w.path)
	if err != nil {
		w.f = failedFile{err: fmt.Errorf("the audit file could not be opened again after a failed rotation (%v): %w; restart the agent", cause, err)}
		return errors.Join(cause, err)
	}
	w.f = f
	return cause
}

// rotatedName returns a name for the file being rotated that no file has.
func (w *Writer) rotatedName() (string, error) {
	base := w.path + "." + w.opts.Now().UTC().Format(rotatedLayout)
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name, nil
		} else if err != nil {
			return "", fmt.Errorf("check rotated name %s: %w", name, err)
		}
		if i > 1000 {
			return "", fmt.Errorf("no free rotated name after %s", base)
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// failedFile stands in for a file that could not be reopened.
type failedFile struct{ err error }

func (f failedFile) ReadAt([]byte, int64) (int, error)  { return 0, f.err }
func (f failedFile) WriteAt([]byte, int64) (int, error) { return 0, f.err }
func (f failedFile) Truncate(int64) error               { return f.err }
func (f failedFile) Sync() error                        { return f.err }
func (f failedFile) Stat() (os.FileInfo, error)         { return nil, f.err }
func (f failedFile) Close() error                       { return nil }

// firstLineTime returns the time of the file's first line, zero when it
// has none or it cannot be read.
func firstLineTime(r io.ReaderAt) time.Time {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, MaxLineBytes+1), 64<<10)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return time.Time{}
	}
	var l struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(line, &l) != nil {
		return time.Time{}
	}
	return l.Time
}
