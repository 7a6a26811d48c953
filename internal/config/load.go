package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrNotFound is returned (wrapped) when the config file does not exist:
// "no config" is a different problem, with a different fix, than a bad one.
var ErrNotFound = errors.New("config file not found")

// AccessError is returned when the file exists but cannot be read.
type AccessError struct {
	Path string
	Err  error
}

// Error says what an administrator checks first: the file's owner and
// mode, since the service account, not root, reads it.
func (e *AccessError) Error() string {
	return fmt.Sprintf("config file %s cannot be read: %v (check its owner and mode: the service account needs read access)", e.Path, e.Err)
}

// Unwrap exposes the OS error, so callers can tell a permission problem
// from another read failure with errors.Is.
func (e *AccessError) Unwrap() error { return e.Err }

// Problem is one thing wrong with a config file.
type Problem struct {
	Line int    // 0 when the key is absent
	Path string // key path, e.g. directory.domains[0].servers[1]
	Msg  string
}

// String leads with the line and the key path, so an administrator can
// go straight to the line in an editor.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "config line %d: ", p.Line)
	} else {
		b.WriteString("config: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is an invalid config: every problem found, each with its line.
type Error struct {
	File     string
	Problems []Problem
}

// Error prints one problem alone, or all of them, one per line, so one
// run of `check --offline` shows every fix needed.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d problems in %s:\n  %s", len(lines), e.File, strings.Join(lines, "\n  "))
}

// Load reads, checks and completes the config at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s (create it from config/wbagent.example.yaml, or pass --config)", ErrNotFound, abs)
		}
		return nil, &AccessError{Path: abs, Err: err}
	}
	return Parse(data, abs)
}

// Parse checks and completes a config given as bytes; path is where it came
// from (relative paths inside resolve against its folder).
func Parse(data []byte, path string) (*Config, error) {
	cfg := &Config{Path: path, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{File: path, Problems: []Problem{yamlSyntaxProblem(err)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: path, Problems: []Problem{{Msg: "the file is empty: start from config/wbagent.example.yaml"}}}
	}
	w := &walker{lines: cfg.lines}
	w.walk(root.Content[0], reflect.TypeOf(*cfg), "")
	if len(w.problems) > 0 {
		return nil, &Error{File: path, Problems: w.problems}
	}
	if err := root.Content[0].Decode(cfg); err != nil {
		return nil, &Error{File: path, Problems: []Problem{yamlSyntaxProblem(err)}}
	}
	if probs := cfg.complete(); len(probs) > 0 {
		return nil, &Error{File: path, Problems: probs}
	}
	return cfg, nil
}

// Warnings lists non-fatal findings to log at start.
func (c *Config) Warnings() []string { return c.warnings }

// Line returns the line of a key path in the file, or 0.
func (c *Config) Line(path string) int { return c.lines[path] }

func yamlSyntaxProblem(err error) Problem {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	var line int
	if strings.HasPrefix(msg, "line ") {
		rest := msg[len("line "):]
		if i := strings.Index(rest, ":"); i > 0 {
			if n, e := strconv.Atoi(rest[:i]); e == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return Problem{Line: line, Msg: "not valid YAML: " + msg}
}

var (
	durationType  = reflect.TypeOf(Duration(0))
	secretRefType = reflect.TypeOf(SecretRef{})
)

// walker checks the YAML tree against the Go types before decoding, so that
// every unknown key and wrong type is reported with its full path and line
// (yaml.v3's own errors give a line but no path, and stop at the first).
type walker struct {
	lines    map[string]int
	problems []Problem
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.problems = append(w.problems, Problem{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if _, ok := w.lines[path]; path != "" && !ok {
		w.lines[path] = n.Line
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	switch {
	case t == durationType:
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			w.fail(n, path, "%v", err)
		}
		return
	case t == secretRefType:
		var r SecretRef
		if err := r.UnmarshalYAML(n); err != nil {
			w.fail(n, path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a section of keys, found %s", describe(n))
			return
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f
			names = append(names, tag)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				hint := ""
				if s := closest(k.Value, names); s != "" {
					hint = fmt.Sprintf(" (did you mean %q?)", s)
				}
				w.fail(k, join(path, k.Value), "unknown key%s; allowed here: %s", hint, strings.Join(names, ", "))
				continue
			}
			if seen[k.Value] {
				w.fail(k, join(path, k.Value), "key given twice")
				continue
			}
			seen[k.Value] = true
			w.lines[join(path, k.Value)] = k.Line // errors point at the key, not its value
			w.walk(v, f.Type, join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, found %s", describe(n))
			return
		}
		for i, e := range n.Content {
			w.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "expected text, found %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.fail(n, path, "expected true or false, found %s", describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			w.fail(n, path, "expected a whole number, found %s", describe(n))
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// closest returns the allowed key nearest to a misspelt one, if near enough.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance, for "did you mean" hints.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
