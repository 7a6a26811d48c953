package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A strict JSON reader (RFC 8259) for protocol bodies. encoding/json cannot
// be made strict enough: it accepts duplicate members, replaces invalid UTF-8
// and lone surrogates with U+FFFD, and decodes strings into Go strings that
// cannot be wiped. This reader rejects all of those, and decodes every string
// into a fresh byte slice of its own, so a password can be wiped after use.

type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (k jsonKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

type jsonValue struct {
	kind    jsonKind
	b       bool
	s       []byte // decoded string, or the number's literal text
	members []jsonMember
	elems   []jsonValue
}

type jsonMember struct {
	name  string
	value jsonValue
}

// maxJSONDepth bounds nesting; protocol bodies nest three levels at most.
const maxJSONDepth = 16

type jsonParser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON parses one JSON value filling all of data (surrounding
// whitespace allowed). Errors name a byte offset, never content.
func parseJSON(data []byte) (jsonValue, error) {
	p := jsonParser{data: data}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return jsonValue{}, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return jsonValue{}, p.errorf("unexpected data after the JSON value")
	}
	return v, nil
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) literal(word string) bool {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *jsonParser) value() (jsonValue, error) {
	if p.pos >= len(p.data) {
		return jsonValue{}, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		return jsonValue{kind: jString, s: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return jsonValue{kind: jBool, b: true}, nil
	case p.literal("false"):
		return jsonValue{kind: jBool}, nil
	case p.literal("null"):
		return jsonValue{kind: jNull}, nil
	}
	return jsonValue{}, p.errorf("unexpected character")
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.errorf("nested deeper than %d levels", maxJSONDepth)
	}
	return nil
}

func (p *jsonParser) object() (jsonValue, error) {
	v := jsonValue{kind: jObject}
	err := p.container('}', "an object", func() error {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return p.errorf("expected a member name")
		}
		name, err := p.str()
		if err != nil {
			return err
		}
		for i := range v.members {
			if v.members[i].name == string(name) {
				return p.errorf("duplicate member %s", quoteName(string(name)))
			}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.errorf("expected ':' after a member name")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value()
		if err != nil {
			return err
		}
		v.members = append(v.members, jsonMember{name: string(name), value: val})
		return nil
	})
	return v, err
}

func (p *jsonParser) array() (jsonValue, error) {
	v := jsonValue{kind: jArray}
	err := p.container(']', "an array", func() error {
		val, err := p.value()
		if err != nil {
			return err
		}
		v.elems = append(v.elems, val)
		return nil
	})
	return v, err
}

// container reads an object or an array from its opening byte to close:
// nothing, or item (called at each item, after white space) then ',' or
// close, again and again. It counts the nesting depth, so that a deep
// document is refused instead of exhausting the stack. what names the
// container in errors.
func (p *jsonParser) container(close byte, what string, item func() error) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer func() { p.depth-- }()
	p.pos++ // { or [
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == close {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if err := item(); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.errorf("unexpected end of input in %s", what)
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case close:
			p.pos++
			return nil
		default:
			return p.errorf("expected ',' or '%c' in %s", close, what)
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *jsonParser) number() (jsonValue, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() bool {
		n := p.pos
		for p.pos < len(p.data) && isDigit(p.data[p.pos]) {
			p.pos++
		}
		return p.pos > n
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case !digits():
		return jsonValue{}, p.errorf("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if !digits() {
			return jsonValue{}, p.errorf("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if !digits() {
			return jsonValue{}, p.errorf("invalid number")
		}
	}
	return jsonValue{kind: jNumber, s: p.data[start:p.pos:p.pos]}, nil
}

// str decodes the string starting at p.pos (a '"') into a new slice sized
// once, so no partial copy of its contents is left behind by regrowth.
func (p *jsonParser) str() ([]byte, error) {
	p.pos++ // opening quote
	end := p.pos
	for end < len(p.data) && p.data[end] != '"' {
		if p.data[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(p.data) {
		return nil, p.errorf("unterminated string")
	}
	out := make([]byte, 0, end-p.pos)
	for p.pos < end {
		c := p.data[p.pos]
		switch {
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				clear(out)
				return nil, err
			}
			out = utf8.AppendRune(out, r)
		case c < 0x20:
			clear(out)
			return nil, p.errorf("control character in a string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:end])
			if r == utf8.RuneError && size <= 1 {
				clear(out)
				return nil, p.errorf("invalid UTF-8 in a string")
			}
			out = append(out, p.data[p.pos:p.pos+size]...)
			p.pos += size
		}
	}
	p.pos++ // closing quote
	return out, nil
}

// escape decodes one escape sequence at p.pos, joining UTF-16 surrogate
// pairs and refusing lone surrogates, which are not Unicode text.
func (p *jsonParser) escape() (rune, error) {
	if p.pos+1 >= len(p.data) {
		return 0, p.errorf("truncated escape")
	}
	c := p.data[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r1, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if !utf16.IsSurrogate(r1) {
			return r1, nil
		}
		if r1 >= 0xDC00 || !p.literal(`\u`) {
			return 0, p.errorf("unpaired UTF-16 surrogate")
		}
		r2, err := p.hex4()
		if err != nil {
			return 0, err
		}
		r := utf16.DecodeRune(r1, r2)
		if r == utf8.RuneError {
			return 0, p.errorf("unpaired UTF-16 surrogate")
		}
		return r, nil
	}
	return 0, p.errorf("invalid escape")
}

func (p *jsonParser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, p.errorf("truncated \\u escape")
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case isDigit(c):
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.errorf("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}

// wipe overwrites every decoded string in v.
func (v *jsonValue) wipe() {
	if v.kind == jString {
		clear(v.s)
	}
	for i := range v.members {
		v.members[i].value.wipe()
	}
	for i := range v.elems {
		v.elems[i].wipe()
	}
}

// text returns a string member's value; name is for the error.
func (v *jsonValue) text(name string) (string, error) {
	if v.kind != jString {
		return "", fmt.Errorf("%s must be a string, not %s", name, v.kind)
	}
	return string(v.s), nil
}

// boolean returns a boolean member's value.
func (v *jsonValue) boolean(name string) (bool, error) {
	if v.kind != jBool {
		return false, fmt.Errorf("%s must be true or false, not %s", name, v.kind)
	}
	return v.b, nil
}

// integer returns an integer member's value, written without fraction or
// exponent.
func (v *jsonValue) integer(name string) (int, error) {
	if v.kind != jNumber {
		return 0, fmt.Errorf("%s must be an integer, not %s", name, v.kind)
	}
	n, err := strconv.Atoi(string(v.s))
	if err != nil {
		return 0, fmt.Errorf("%s must be an integer written without fraction or exponent", name)
	}
	return n, nil
}

// object checks that v is an object, for a member named name.
func (v *jsonValue) object(name string) error {
	if v.kind != jObject {
		return fmt.Errorf("%s must be an object, not %s", name, v.kind)
	}
	return nil
}

var errNotObject = errors.New("the body is not a JSON object")

// parseObject parses a message body, which is a JSON object (§3, §6).
func parseObject(body []byte) (jsonValue, error) {
	v, err := parseJSON(body)
	if err != nil {
		return jsonValue{}, err
	}
	if v.kind != jObject {
		return jsonValue{}, errNotObject
	}
	return v, nil
}

// quoteName quotes a member name for an error, shortened: names come from
// the sender and are echoed only as far as they help find the mistake.
func quoteName(name string) string { return strconv.Quote(truncate(name)) }

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return s[:max] + "…"
}
