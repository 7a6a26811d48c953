package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// maxDepth bounds nesting when encoding and decoding, so neither a hostile
// frame nor a cyclic value can exhaust the stack.
const maxDepth = 48

// Marshal encodes v as one AMQP value.
func Marshal(v any) ([]byte, error) {
	return AppendValue(nil, v)
}

// AppendValue appends the encoding of v to b.
func AppendValue(b []byte, v any) ([]byte, error) {
	e := encoder{b: b}
	if err := e.value(v, 0); err != nil {
		return b, err
	}
	return e.b, nil
}

type encoder struct {
	b []byte
}

func (e *encoder) u8(v byte) { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) {
	e.b = binary.BigEndian.AppendUint16(e.b, v)
}
func (e *encoder) u32(v uint32) {
	e.b = binary.BigEndian.AppendUint32(e.b, v)
}
func (e *encoder) u64(v uint64) {
	e.b = binary.BigEndian.AppendUint64(e.b, v)
}

// value writes v with the most compact constructor that represents it.
func (e *encoder) value(v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("encode amqp value: nested deeper than %d levels", maxDepth)
	}
	switch t := v.(type) {
	case nil:
		e.u8(codeNull)
	case bool:
		if t {
			e.u8(codeTrue)
		} else {
			e.u8(codeFalse)
		}
	case uint8:
		e.u8(codeUbyte)
		e.u8(t)
	case uint16:
		e.u8(codeUshort)
		e.u16(t)
	case uint32:
		switch {
		case t == 0:
			e.u8(codeUint0)
		case t < 256:
			e.u8(codeSmallUint)
			e.u8(byte(t))
		default:
			e.u8(codeUint)
			e.u32(t)
		}
	case uint64:
		switch {
		case t == 0:
			e.u8(codeUlong0)
		case t < 256:
			e.u8(codeSmallUlong)
			e.u8(byte(t))
		default:
			e.u8(codeUlong)
			e.u64(t)
		}
	case int8:
		e.u8(codeByte)
		e.u8(byte(t))
	case int16:
		e.u8(codeShort)
		e.u16(uint16(t))
	case int32:
		if t >= -128 && t <= 127 {
			e.u8(codeSmallInt)
			e.u8(byte(int8(t)))
		} else {
			e.u8(codeInt)
			e.u32(uint32(t))
		}
	case int64:
		e.long(t)
	case int:
		e.long(int64(t))
	case float32:
		e.u8(codeFloat)
		e.u32(math.Float32bits(t))
	case float64:
		e.u8(codeDouble)
		e.u64(math.Float64bits(t))
	case Decimal32:
		e.u8(codeDecimal32)
		e.b = append(e.b, t[:]...)
	case Decimal64:
		e.u8(codeDecimal64)
		e.b = append(e.b, t[:]...)
	case Decimal128:
		e.u8(codeDecimal128)
		e.b = append(e.b, t[:]...)
	case Char:
		e.u8(codeChar)
		e.u32(uint32(t))
	case time.Time:
		e.u8(codeTimestamp)
		e.u64(uint64(t.UnixMilli()))
	case UUID:
		e.u8(codeUUID)
		e.b = append(e.b, t[:]...)
	case []byte:
		e.variable(codeVbin8, codeVbin32, t)
	case string:
		e.variable(codeStr8, codeStr32, []byte(t))
	case Symbol:
		e.variable(codeSym8, codeSym32, []byte(t))
	case Described:
		e.u8(codeDescribed)
		if err := e.value(t.Descriptor, depth+1); err != nil {
			return err
		}
		return e.value(t.Value, depth+1)
	case []any:
		return e.list(t, depth)
	case Map:
		return e.mapValue(len(t), func(i int) (any, any) { return t[i].Key, t[i].Value }, depth)
	case map[Symbol]any:
		keys := make([]Symbol, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		return e.mapValue(len(keys), func(i int) (any, any) { return keys[i], t[keys[i]] }, depth)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return e.mapValue(len(keys), func(i int) (any, any) { return keys[i], t[keys[i]] }, depth)
	default:
		return e.array(v, depth)
	}
	return nil
}

func (e *encoder) long(t int64) {
	if t >= -128 && t <= 127 {
		e.u8(codeSmallLong)
		e.u8(byte(int8(t)))
	} else {
		e.u8(codeLong)
		e.u64(uint64(t))
	}
}

func (e *encoder) variable(c8, c32 byte, b []byte) {
	if len(b) < 256 {
		e.u8(c8)
		e.u8(byte(len(b)))
	} else {
		e.u8(c32)
		e.u32(uint32(len(b)))
	}
	e.b = append(e.b, b...)
}

// compound writes a list/map/array: the 32-bit form first, then shrinks
// it to the 8-bit form when size and count fit.
func (e *encoder) compound(c8, c32 byte, count int, body func() error) error {
	start := len(e.b)
	e.u8(c32)
	e.u32(0)
	e.u32(0)
	if err := body(); err != nil {
		return err
	}
	n := len(e.b) - start - 9
	if n+1 <= 255 && count <= 255 {
		e.b[start] = c8
		e.b[start+1] = byte(n + 1)
		e.b[start+2] = byte(count)
		copy(e.b[start+3:], e.b[start+9:])
		e.b = e.b[:len(e.b)-6]
		return nil
	}
	if uint64(n)+4 > math.MaxUint32 || uint64(count) > math.MaxUint32 {
		return fmt.Errorf("encode amqp compound: %d bytes do not fit a 32-bit size", n)
	}
	binary.BigEndian.PutUint32(e.b[start+1:], uint32(n+4))
	binary.BigEndian.PutUint32(e.b[start+5:], uint32(count))
	return nil
}

func (e *encoder) list(l []any, depth int) error {
	if len(l) == 0 {
		e.u8(codeList0)
		return nil
	}
	return e.compound(codeList8, codeList32, len(l), func() error {
		for _, x := range l {
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *encoder) mapValue(n int, entry func(int) (any, any), depth int) error {
	return e.compound(codeMap8, codeMap32, 2*n, func() error {
		for i := range n {
			k, v := entry(i)
			if err := e.value(k, depth+1); err != nil {
				return err
			}
			if err := e.value(v, depth+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// arrayShape describes how a typed slice is written as an AMQP array.
func arrayShape(v any) (code byte, n int, elem func(int) any, ok bool) {
	switch t := v.(type) {
	case []bool:
		return shape(codeBool, t)
	case UbyteArray:
		return shape(codeUbyte, t)
	case []uint16:
		return shape(codeUshort, t)
	case []uint32:
		return shape(codeUint, t)
	case []uint64:
		return shape(codeUlong, t)
	case []int8:
		return shape(codeByte, t)
	case []int16:
		return shape(codeShort, t)
	case []int32:
		return shape(codeInt, t)
	case []int64:
		return shape(codeLong, t)
	case []float32:
		return shape(codeFloat, t)
	case []float64:
		return shape(codeDouble, t)
	case []Decimal32:
		return shape(codeDecimal32, t)
	case []Decimal64:
		return shape(codeDecimal64, t)
	case []Decimal128:
		return shape(codeDecimal128, t)
	case []Char:
		return shape(codeChar, t)
	case []time.Time:
		return shape(codeTimestamp, t)
	case []UUID:
		return shape(codeUUID, t)
	case [][]byte:
		return shape(variableCode(t, codeVbin8, codeVbin32), t)
	case []string:
		return shape(variableCode(t, codeStr8, codeStr32), t)
	case []Symbol:
		return shape(variableCode(t, codeSym8, codeSym32), t)
	}
	return 0, 0, nil, false
}

func shape[T any](code byte, t []T) (byte, int, func(int) any, bool) {
	return code, len(t), func(i int) any { return t[i] }, true
}

// variableCode is the element code of an array of variable-width values:
// every element shares one constructor, so the short one only while all
// of them fit in 255 bytes.
func variableCode[T ~string | ~[]byte](t []T, short, long byte) byte {
	for _, x := range t {
		if len(x) > 255 {
			return long
		}
	}
	return short
}

func (e *encoder) array(v any, depth int) error {
	if a, ok := v.(Array); ok {
		code := a.Code
		switch code {
		case codeList0, codeList8, codeList32:
			code = codeList32
		case codeMap8, codeMap32:
			code = codeMap32
		case codeArray8, codeArray32:
			code = codeArray32
		}
		return e.compound(codeArray8, codeArray32, len(a.Elems), func() error {
			if a.Described {
				e.u8(codeDescribed)
				if err := e.value(a.Descriptor, depth+1); err != nil {
					return err
				}
			}
			e.u8(code)
			for _, x := range a.Elems {
				if err := e.body(code, x, depth+1); err != nil {
					return err
				}
			}
			return nil
		})
	}
	code, n, elem, ok := arrayShape(v)
	if !ok {
		return fmt.Errorf("encode amqp value: type %T has no AMQP encoding", v)
	}
	return e.compound(codeArray8, codeArray32, n, func() error {
		e.u8(code)
		for i := range n {
			if err := e.body(code, elem(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// body writes x without its constructor, in the format code prescribes:
// the form every element of an array takes.
func (e *encoder) body(code byte, x any, depth int) error {
	bad := func() error {
		return fmt.Errorf("encode amqp array: element %T does not fit constructor %#02x", x, code)
	}
	fits := true
	switch code {
	case codeNull:
		if x != nil {
			return bad()
		}
	case codeBool:
		t, ok := x.(bool)
		if !ok {
			return bad()
		}
		if t {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case codeTrue, codeFalse:
		if t, ok := x.(bool); !ok || t != (code == codeTrue) {
			return bad()
		}
	case codeUbyte:
		fits = put(x, e.u8)
	case codeUshort:
		fits = put(x, e.u16)
	case codeUint, codeSmallUint, codeUint0:
		t, ok := x.(uint32)
		if !ok || (code == codeSmallUint && t > 255) || (code == codeUint0 && t != 0) {
			return bad()
		}
		switch code {
		case codeUint:
			e.u32(t)
		case codeSmallUint:
			e.u8(byte(t))
		}
	case codeUlong, codeSmallUlong, codeUlong0:
		t, ok := x.(uint64)
		if !ok || (code == codeSmallUlong && t > 255) || (code == codeUlong0 && t != 0) {
			return bad()
		}
		switch code {
		case codeUlong:
			e.u64(t)
		case codeSmallUlong:
			e.u8(byte(t))
		}
	case codeByte:
		fits = put(x, func(t int8) { e.u8(byte(t)) })
	case codeShort:
		fits = put(x, func(t int16) { e.u16(uint16(t)) })
	case codeInt, codeSmallInt:
		t, ok := x.(int32)
		if !ok || (code == codeSmallInt && (t < -128 || t > 127)) {
			return bad()
		}
		if code == codeInt {
			e.u32(uint32(t))
		} else {
			e.u8(byte(int8(t)))
		}
	case codeLong, codeSmallLong:
		t, ok := x.(int64)
		if !ok || (code == codeSmallLong && (t < -128 || t > 127)) {
			return bad()
		}
		if code == codeLong {
			e.u64(uint64(t))
		} else {
			e.u8(byte(int8(t)))
		}
	case codeFloat:
		fits = put(x, func(t float32) { e.u32(math.Float32bits(t)) })
	case codeDouble:
		fits = put(x, func(t float64) { e.u64(math.Float64bits(t)) })
	case codeDecimal32:
		fits = put(x, func(t Decimal32) { e.b = append(e.b, t[:]...) })
	case codeDecimal64:
		fits = put(x, func(t Decimal64) { e.b = append(e.b, t[:]...) })
	case codeDecimal128:
		fits = put(x, func(t Decimal128) { e.b = append(e.b, t[:]...) })
	case codeChar:
		fits = put(x, func(t Char) { e.u32(uint32(t)) })
	case codeTimestamp:
		fits = put(x, func(t time.Time) { e.u64(uint64(t.UnixMilli())) })
	case codeUUID:
		fits = put(x, func(t UUID) { e.b = append(e.b, t[:]...) })
	case codeVbin8, codeVbin32, codeStr8, codeStr32, codeSym8, codeSym32:
		var raw []byte
		switch t := x.(type) {
		case []byte:
			if code != codeVbin8 && code != codeVbin32 {
				return bad()
			}
			raw = t
		case string:
			if code != codeStr8 && code != codeStr32 {
				return bad()
			}
			raw = []byte(t)
		case Symbol:
			if code != codeSym8 && code != codeSym32 {
				return bad()
			}
			raw = []byte(t)
		default:
			return bad()
		}
		if code&0xf0 == 0xa0 {
			if len(raw) > 255 {
				return bad()
			}
			e.u8(byte(len(raw)))
		} else {
			e.u32(uint32(len(raw)))
		}
		e.b = append(e.b, raw...)
	case codeList32:
		l, ok := x.([]any)
		if !ok {
			return bad()
		}
		return e.compoundBody(len(l), func() error {
			for _, y := range l {
				if err := e.value(y, depth+1); err != nil {
					return err
				}
			}
			return nil
		})
	case codeMap32:
		m, ok := x.(Map)
		if !ok {
			return bad()
		}
		return e.compoundBody(2*len(m), func() error {
			for _, kv := range m {
				if err := e.value(kv.Key, depth+1); err != nil {
					return err
				}
				if err := e.value(kv.Value, depth+1); err != nil {
					return err
				}
			}
			return nil
		})
	case codeArray32:
		// An array element is an array written without its constructor:
		// encode it whole, then drop the leading constructor byte after
		// widening it to the 32-bit form the outer constructor promised.
		sub := encoder{}
		if err := sub.array(x, depth+1); err != nil {
			return err
		}
		enc := sub.b
		if enc[0] == codeArray8 {
			size, count := uint32(enc[1]), uint32(enc[2])
			e.u32(size + 3)
			e.u32(count)
			e.b = append(e.b, enc[3:]...)
		} else {
			e.b = append(e.b, enc[1:]...)
		}
	default:
		return bad()
	}
	if !fits {
		return bad()
	}
	return nil
}

// put writes x with write when x has the Go type its constructor
// prescribes, and reports whether it had.
func put[T any](x any, write func(T)) bool {
	t, ok := x.(T)
	if ok {
		write(t)
	}
	return ok
}

// compoundBody writes the 32-bit size and count of a list or map element
// inside an array, then its items.
func (e *encoder) compoundBody(count int, items func() error) error {
	start := len(e.b)
	e.u32(0)
	e.u32(uint32(count))
	if err := items(); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(e.b[start:], uint32(len(e.b)-start-4))
	return nil
}
