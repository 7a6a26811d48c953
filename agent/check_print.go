package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// checkJSONShape documents `check --json`'s output, one JSON document
// written once every check has run.
const checkJSONShape = `{"ok": bool, "rows": [{"check": str, "result": "OK"|"WARN"|"FAIL", "detail": str, "fix": str}]}`

// checkWidth is the width rows are wrapped to: a standard terminal.
const checkWidth = 80

// checkRowJSON is one row of `check --json`.
type checkRowJSON struct {
	Check  string `json:"check"`
	Result string `json:"result"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// checkPrinter prints `check` rows as each group of checks completes: as
// text wrapped to 80 columns, or, with --json, as one document at the end.
// On a terminal it says on stderr what a slow group is waiting for.
type checkPrinter struct {
	out      io.Writer
	progress io.Writer // nil: no progress lines
	json     bool
	all      []checkRow
}

func newCheckPrinter(env *cmdEnv, asJSON bool) *checkPrinter {
	p := &checkPrinter{out: env.stdout, json: asJSON}
	if isTerminal(env.stderr) {
		p.progress = env.stderr
	}
	return p
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// group runs one group of checks, saying what it waits for meanwhile, and
// prints its rows when it returns.
func (p *checkPrinter) group(what string, run func() []checkRow) {
	if p.progress != nil {
		fmt.Fprintf(p.progress, "checking %s …", what)
	}
	rows := run()
	if p.progress != nil {
		fmt.Fprint(p.progress, "\r\033[K") // erase the progress line
	}
	p.rows(rows)
}

// rows prints rows now (text) or keeps them for the document (JSON).
func (p *checkPrinter) rows(rows []checkRow) {
	p.all = append(p.all, rows...)
	if p.json {
		return
	}
	for _, r := range rows {
		p.printRow(r)
	}
}

// finish ends the output and reports whether every row passed.
func (p *checkPrinter) finish() bool {
	ok := true
	doc := struct {
		OK   bool           `json:"ok"`
		Rows []checkRowJSON `json:"rows"`
	}{Rows: []checkRowJSON{}}
	for _, r := range p.all {
		ok = ok && r.OK
		row := checkRowJSON{Check: r.Name, Result: r.result(), Detail: r.Detail}
		if !r.OK || r.Warn {
			row.Fix = r.Fix
		}
		doc.Rows = append(doc.Rows, row)
	}
	if p.json {
		doc.OK = ok
		enc := json.NewEncoder(p.out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(doc)
	}
	return ok
}

// result is the row's RESULT word.
func (r checkRow) result() string {
	switch {
	case !r.OK:
		return "FAIL"
	case r.Warn:
		return "WARN"
	}
	return "OK"
}

// printRow writes one row: the result, then "check: detail" wrapped under
// itself, then the fix line for a FAIL or WARN.
//
//	FAIL  service bus queue requests: queue requests does not exist in
//	      namespace contoso.servicebus.windows.net
//	      fix: create it, or correct servicebus.queue
func (p *checkPrinter) printRow(r checkRow) {
	const indent = "      "
	res := r.result()
	text := r.Name
	if r.Detail != "" {
		text += ": " + r.Detail
	}
	for i, line := range wrap(text, checkWidth-len(indent)) {
		lead := indent
		if i == 0 {
			lead = res + indent[len(res):]
		}
		fmt.Fprintln(p.out, lead+line)
	}
	if (!r.OK || r.Warn) && r.Fix != "" {
		for i, line := range wrap("fix: "+r.Fix, checkWidth-len(indent)-5) {
			lead := indent
			if i > 0 {
				lead += "     "
			}
			fmt.Fprintln(p.out, lead+line)
		}
	}
}

// wrap breaks s into lines of at most width columns at spaces; a word
// longer than width (a path, a URL) gets a line of its own, unbroken, so
// it can still be copied whole.
func wrap(s string, width int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			switch {
			case line == "":
				line = w
			case len([]rune(line))+1+len([]rune(w)) <= width:
				line += " " + w
			default:
				lines = append(lines, line)
				line = w
			}
		}
		lines = append(lines, line)
	}
	return lines
}
