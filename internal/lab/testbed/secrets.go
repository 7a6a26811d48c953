package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode/utf16"

	"wbagent/internal/secret"
)

// Secrets remembers every password a run used (service account, users'
// initial passwords, every password sent in a request), so that Scan can
// prove none of them reached a file. It is safe for concurrent use.
type Secrets struct {
	mu  sync.Mutex
	all map[string]bool
}

// NewSecrets returns an empty registry.
func NewSecrets() *Secrets { return &Secrets{all: map[string]bool{}} }

// Track records the password held by s (nil is ignored).
func (r *Secrets) Track(s *secret.Secret) {
	if s.IsEmpty() {
		return
	}
	r.TrackString(s.Reveal())
}

// TrackString records a password given as text.
func (r *Secrets) TrackString(pw string) {
	if pw == "" {
		return
	}
	r.mu.Lock()
	r.all[pw] = true
	r.mu.Unlock()
}

// New returns a fresh random password that meets AD's complexity rules
// (upper and lower case, digit, symbol; 22 characters) and tracks it.
func (r *Secrets) New() *secret.Secret {
	pw := NewPassword()
	r.TrackString(pw)
	return secret.FromString(pw)
}

// Len is the number of passwords tracked.
func (r *Secrets) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// NewPassword returns a random 22-character password with upper and lower
// case letters, digits and symbols; unique enough that finding it in a
// file cannot be a coincidence.
func NewPassword() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("testbed: crypto/rand failed: " + err.Error())
	}
	return "Tb" + hex.EncodeToString(b[:]) + "-x9!"
}

// Leak is one password found where it must never be.
type Leak struct {
	// Where is a file path, or the name of an in-memory text (e.g. a
	// dead-letter description).
	Where string
	// Offset is the byte offset of the first match.
	Offset int
	// Encoding is how the password was written: utf-8, utf-16le or json.
	Encoding string
}

// String says where and in which encoding a password was found, never
// the password itself, so a failing test's output leaks nothing.
func (l Leak) String() string {
	return fmt.Sprintf("%s: a password (%s) at byte %d", l.Where, l.Encoding, l.Offset)
}

// patterns returns every byte form in which a password could have been
// written: as is, JSON-escaped, and UTF-16LE (AD's unicodePwd encoding).
func (r *Secrets) patterns() []pattern {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []pattern
	for pw := range r.all {
		ps = append(ps, pattern{[]byte(pw), "utf-8"})
		if j, err := json.Marshal(pw); err == nil {
			if esc := j[1 : len(j)-1]; !bytes.Equal(esc, []byte(pw)) {
				ps = append(ps, pattern{esc, "json"})
			}
		}
		if ascii := asciiJSON(pw); ascii != pw {
			ps = append(ps, pattern{[]byte(ascii), "json"})
		}
		units := utf16.Encode([]rune(pw))
		u := make([]byte, 2*len(units))
		for i, c := range units {
			binary.LittleEndian.PutUint16(u[2*i:], c)
		}
		ps = append(ps, pattern{u, "utf-16le"})
	}
	return ps
}

// asciiJSON escapes pw as a JSON encoder that writes only ASCII would:
// every other character as \uXXXX (surrogate pairs above the BMP).
func asciiJSON(pw string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(pw)) {
		switch {
		case u < 0x20 || u >= 0x7f || u == '<' || u == '>' || u == '&':
			fmt.Fprintf(&b, "\\u%04x", u)
		case u == '"' || u == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(u))
		default:
			b.WriteByte(byte(u))
		}
	}
	return b.String()
}

type pattern struct {
	b   []byte
	enc string
}

// ScanText looks for every tracked password in text, named where.
func (r *Secrets) ScanText(where string, text []byte) []Leak {
	var leaks []Leak
	for _, p := range r.patterns() {
		if i := bytes.Index(text, p.b); i >= 0 {
			leaks = append(leaks, Leak{Where: where, Offset: i, Encoding: p.enc})
		}
	}
	return leaks
}

// Scan reads every regular file below each root (a file or a folder) and
// reports each tracked password found in it. Missing roots are skipped:
// a run that never wrote a file there leaked nothing there.
func (r *Secrets) Scan(roots ...string) ([]Leak, error) {
	ps := r.patterns()
	var leaks []Leak
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("scan %s: %w", path, err)
			}
			for _, p := range ps {
				if i := bytes.Index(b, p.b); i >= 0 {
					leaks = append(leaks, Leak{Where: path, Offset: i, Encoding: p.enc})
				}
			}
			return nil
		})
		if err != nil {
			return leaks, err
		}
	}
	sort.Slice(leaks, func(i, j int) bool { return leaks[i].Where < leaks[j].Where })
	return leaks, nil
}

// ScanError is Scan turned into one error naming every leak, or nil.
func (r *Secrets) ScanError(roots ...string) error {
	leaks, err := r.Scan(roots...)
	if err != nil {
		return err
	}
	if len(leaks) == 0 {
		return nil
	}
	lines := make([]string, len(leaks))
	for i, l := range leaks {
		lines[i] = l.String()
	}
	return fmt.Errorf("%d password leak(s):\n  %s", len(leaks), strings.Join(lines, "\n  "))
}
