package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// Report is what Verify found.
type Report struct {
	// Lines is how many lines verified, up to the first broken one.
	Lines int
	// Broken is the 1-based number of the first broken line; 0 when the
	// whole chain verifies.
	Broken int
	// Reason says why line Broken fails, in words for an administrator.
	Reason string
	// Last is the hash of the last line that verified (Genesis for an
	// empty file): where the chain continues.
	Last string
}

// OK reports whether the whole chain verified.
func (r Report) OK() bool { return r.Broken == 0 }

// Verify reads an audit file and checks every line: its hash matches its
// content, and its prev is the hash of the line before (Genesis for the
// first). It stops at the first broken line. The error is only for a reader
// that fails; a broken chain is a Report, not an error.
func Verify(r io.Reader) (Report, error) { return VerifyFrom(r, Genesis) }

// VerifyFrom is Verify for a file whose chain continues from start: the
// hash of the last line of the file before it (a rotated file), Genesis
// for the first file.
func VerifyFrom(r io.Reader, start string) (Report, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	rep := Report{Last: start}
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return rep, nil
		}
		switch {
		case errors.Is(err, errLineTooLong):
			return rep.broken(n, fmt.Sprintf("the line is longer than %d bytes", MaxLineBytes)), nil
		case errors.Is(err, io.EOF):
			return rep.broken(n, "the last line has no newline: a write was cut short (a crash or a full disk); the agent moves such a tail aside at its next start"), nil
		case err != nil:
			return rep, fmt.Errorf("read audit file at line %d: %w", n, err)
		case len(line) == 0:
			return rep.broken(n, "the line is empty"), nil
		}
		hash, prev, err := checkLine(line)
		if err != nil {
			return rep.broken(n, err.Error()), nil
		}
		if prev != rep.Last {
			if n == 1 && start == Genesis {
				return rep.broken(n, "the first line does not start the chain (its prev is not the genesis value): lines were removed from the start of the file, or it continues a rotated file that was not checked with it"), nil
			}
			if n == 1 {
				return rep.broken(n, fmt.Sprintf("the first line's prev %.12s… is not the hash %.12s… of the previous file's last line: lines or a file were removed, or the files are out of order", prev, start)), nil
			}
			return rep.broken(n, fmt.Sprintf("the line's prev %.12s… is not the hash %.12s… of line %d: lines were removed, inserted or reordered", prev, rep.Last, n-1)), nil
		}
		rep.Lines, rep.Last = n, hash
	}
}

func (r Report) broken(n int, why string) Report {
	r.Broken, r.Reason = n, why
	return r
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; io.EOF with a
// non-empty line means the input ended without one.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLineBytes+1 {
			return nil, errLineTooLong
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// FileReport is what VerifySet found in one file of a set.
type FileReport struct {
	Path string
	Report
}

// VerifySet checks files as one chain, in the order given: the first
// starts from start (Genesis, unless earlier files were archived away) and
// each later one continues from the last hash of the one before, as the
// writer's rotation leaves them. It stops at the first broken file; the
// reports cover the files read so far. The error is only for a file that
// cannot be read.
func VerifySet(paths []string, start string) ([]FileReport, error) {
	var out []FileReport
	last := start
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return out, err
		}
		rep, err := VerifyFrom(f, last)
		f.Close()
		if err != nil {
			return out, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, FileReport{Path: p, Report: rep})
		if !rep.OK() {
			return out, nil
		}
		last = rep.Last
	}
	return out, nil
}
