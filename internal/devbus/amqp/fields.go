package amqp

import (
	"fmt"
	"time"
)

// fieldReader reads the fields of a described list (a performative, a
// terminus, a delivery state) by position, remembering the first type error
// so that each decoder reads as a flat list of assignments.
type fieldReader struct {
	name string
	l    []any
	err  error
}

func (f *fieldReader) at(i int) any {
	if i < len(f.l) {
		return f.l[i]
	}
	return nil
}

func (f *fieldReader) fail(field string, got any, want string) {
	if f.err == nil {
		f.err = decodeErr("%s field %s is %T, want %s", f.name, field, got, want)
	}
}

// keep records the error of a nested list unless an earlier field already
// failed.
func (f *fieldReader) keep(err error) {
	if err != nil && f.err == nil {
		f.err = err
	}
}

func (f *fieldReader) mandatory(i int, field string) {
	if f.at(i) == nil && f.err == nil {
		f.err = decodeErr("%s is missing its mandatory field %s", f.name, field)
	}
}

func fieldAs[T any](f *fieldReader, i int, field, want string) (T, bool) {
	var zero T
	x := f.at(i)
	if x == nil {
		return zero, false
	}
	t, ok := x.(T)
	if !ok {
		f.fail(field, x, want)
		return zero, false
	}
	return t, true
}

func (f *fieldReader) str(i int, field string) string {
	v, _ := fieldAs[string](f, i, field, "string")
	return v
}

// address reads an address, which Service Bus and other peers send as a
// string and a few send as a symbol.
func (f *fieldReader) address(i int, field string) string {
	switch t := f.at(i).(type) {
	case nil:
		return ""
	case string:
		return t
	case Symbol:
		return string(t)
	default:
		f.fail(field, t, "string")
		return ""
	}
}

func (f *fieldReader) sym(i int, field string) Symbol {
	v, _ := fieldAs[Symbol](f, i, field, "symbol")
	return v
}

func (f *fieldReader) boolean(i int, field string) bool {
	v, _ := fieldAs[bool](f, i, field, "boolean")
	return v
}

func (f *fieldReader) ubyte(i int, field string) *uint8 {
	if v, ok := fieldAs[uint8](f, i, field, "ubyte"); ok {
		return &v
	}
	return nil
}

func (f *fieldReader) ushort(i int, field string) *uint16 {
	if v, ok := fieldAs[uint16](f, i, field, "ushort"); ok {
		return &v
	}
	return nil
}

func (f *fieldReader) uint(i int, field string) *uint32 {
	if v, ok := fieldAs[uint32](f, i, field, "uint"); ok {
		return &v
	}
	return nil
}

func (f *fieldReader) uintOr(i int, field string, def uint32) uint32 {
	if v := f.uint(i, field); v != nil {
		return *v
	}
	return def
}

func (f *fieldReader) ulong(i int, field string) uint64 {
	v, _ := fieldAs[uint64](f, i, field, "ulong")
	return v
}

func (f *fieldReader) binary(i int, field string) []byte {
	v, _ := fieldAs[[]byte](f, i, field, "binary")
	return v
}

func (f *fieldReader) millis(i int, field string) time.Duration {
	if v := f.uint(i, field); v != nil {
		return time.Duration(*v) * time.Millisecond
	}
	return 0
}

// symbols reads a "multiple" symbol field: absent, one symbol, or an array.
func (f *fieldReader) symbols(i int, field string) []Symbol {
	switch t := f.at(i).(type) {
	case nil:
		return nil
	case Symbol:
		return []Symbol{t}
	case []Symbol:
		return t
	default:
		f.fail(field, t, "symbol or symbol[]")
		return nil
	}
}

// fieldsMap reads a "fields" map (symbol keys). String keys are accepted
// too: some clients send annotation keys as strings.
func (f *fieldReader) fieldsMap(i int, field string) map[Symbol]any {
	x := f.at(i)
	if x == nil {
		return nil
	}
	m, err := toFields(x)
	if err != nil {
		f.fail(field, x, "map with symbol keys")
		return nil
	}
	return m
}

func toFields(x any) (map[Symbol]any, error) {
	m, ok := x.(Map)
	if !ok {
		return nil, fmt.Errorf("not a map: %T", x)
	}
	out := make(map[Symbol]any, len(m))
	for _, e := range m {
		switch k := e.Key.(type) {
		case Symbol:
			out[k] = e.Value
		case string:
			out[Symbol(k)] = e.Value
		default:
			return nil, fmt.Errorf("map key %T is not a symbol", e.Key)
		}
	}
	return out, nil
}

// described reads a nested described list with one of the given codes and
// returns its fields.
func (f *fieldReader) describedList(i int, field string) (code uint64, l []any, ok bool) {
	x := f.at(i)
	if x == nil {
		return 0, nil, false
	}
	code, l, err := describedFields(x)
	if err != nil {
		f.fail(field, x, "described list")
		return 0, nil, false
	}
	return code, l, true
}

// describedFields splits a described list into its numeric descriptor and
// its fields. Symbolic descriptors ("amqp:open:list") map to their codes.
func describedFields(x any) (uint64, []any, error) {
	d, ok := x.(Described)
	if !ok {
		return 0, nil, decodeErr("expected a described list, got %T", x)
	}
	var code uint64
	switch t := d.Descriptor.(type) {
	case uint64:
		code = t
	case Symbol:
		c, ok := symbolicDescriptors[t]
		if !ok {
			return 0, nil, decodeErr("unknown descriptor %q", t)
		}
		code = c
	default:
		return 0, nil, decodeErr("descriptor of type %T", d.Descriptor)
	}
	l, ok := d.Value.([]any)
	if !ok {
		return 0, nil, decodeErr("descriptor %#x describes %T, not a list", code, d.Value)
	}
	return code, l, nil
}

// fieldWriter builds the field list of a described list, dropping trailing
// nulls as the specification allows.
type fieldWriter []any

func (w fieldWriter) described(code uint64) Described {
	n := len(w)
	for n > 0 && w[n-1] == nil {
		n--
	}
	return Described{Descriptor: code, Value: []any(w[:n])}
}

// Optional values are written only when set, so that absent fields stay
// absent on the wire.
func optU32(v *uint32) any {
	if v == nil {
		return nil
	}
	return *v
}

func optU16(v *uint16) any {
	if v == nil {
		return nil
	}
	return *v
}

func optU8(v *uint8) any {
	if v == nil {
		return nil
	}
	return *v
}

func optStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optSym(s Symbol) any {
	if s == "" {
		return nil
	}
	return s
}

func optBool(b bool) any {
	if !b {
		return nil
	}
	return true
}

func optBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func optSymbols(s []Symbol) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

func optFields(m map[Symbol]any) any {
	if m == nil {
		return nil
	}
	return m
}

func optULong(v uint64) any {
	if v == 0 {
		return nil
	}
	return v
}
